//! Throttling counts shared by nodes: additions sum per key and window,
//! reads return only keys that reached the threshold, old windows go.

use clavis_store::{AuthFailureCount, Store};

fn count(key: &str, window: i64, count: u64) -> AuthFailureCount {
    AuthFailureCount {
        key: key.into(),
        window,
        count,
    }
}

pub async fn auth_failures_add_up_and_expire(store: &dyn Store) {
    store
        .add_auth_failures(&[count("a", 100, 3), count("b", 100, 1)], 0)
        .await
        .unwrap();
    store
        .add_auth_failures(&[count("a", 100, 4), count("a", 101, 2)], 0)
        .await
        .unwrap();
    let mut read = store.auth_failures(100, 2).await.unwrap();
    read.sort_by(|x, y| (&x.key, x.window).cmp(&(&y.key, y.window)));
    assert_eq!(read, vec![count("a", 100, 7), count("a", 101, 2)]);
    assert_eq!(
        store.auth_failures(101, 1).await.unwrap(),
        vec![count("a", 101, 2)]
    );
    store.add_auth_failures(&[], 101).await.unwrap();
    assert_eq!(
        store.auth_failures(0, 1).await.unwrap(),
        vec![count("a", 101, 2)]
    );
}
