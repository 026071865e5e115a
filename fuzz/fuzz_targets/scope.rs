//! The client-credentials `scope` (oauth/scope.rs): never panics; an
//! accepted scope names one resource that appears in it followed by
//! `/.default`, at most 2048 bytes, and asking for exactly that resource
//! gives it back; errors stay short whatever the input's size.
#![no_main]

use clavis::oauth::scope::resource_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(scope) = std::str::from_utf8(data) else {
        return;
    };
    match resource_of(scope) {
        Ok(resource) => {
            assert!(!resource.is_empty() && resource.len() <= 2048);
            assert!(!resource.contains([' ', '\t', '\n', '\r']));
            let asked = format!("{resource}/.default");
            assert!(scope.contains(&asked));
            assert_eq!(resource_of(&asked).ok(), Some(resource));
        }
        Err(e) => assert!(
            e.description.len() < 1024,
            "error of {} bytes",
            e.description.len()
        ),
    }
});
