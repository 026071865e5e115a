//! `--timing N`: does the time a refused client authentication takes say
//! what was wrong? A dudect-style check at the HTTP level: requests of each
//! kind (wrong secret of the right length, a short one, a long one, an
//! unknown client) go in random order over one keep-alive connection, and
//! Welch's t-test compares each kind's times with the wrong-secret ones after
//! cropping the slowest tenth (noise). |t| under 4.5 at N samples a kind:
//! no difference found; well above 10: the kinds can be told apart.

use std::time::Instant;

use bytes::Bytes;

use crate::load::{connect, token, Target};

/// One kind of refused request and its measured times (µs).
pub struct Kind {
    pub name: &'static str,
    pub body: Bytes,
    pub micros: Vec<f64>,
}

fn form(client_id: &str, secret: &str) -> Bytes {
    Bytes::from(format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=api%3A%2F%2Fbench%2F.default"
    ))
}

/// The kinds to compare, from one registered client's token body.
pub fn kinds(body: &[u8]) -> anyhow::Result<Vec<Kind>> {
    let text = std::str::from_utf8(body)?;
    let field = |name: &str| {
        text.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no {name} in the token body"))
    };
    let (client, secret) = (field("client_id")?, field("client_secret")?);
    // Same length and prefix, different value.
    let mut wrong: Vec<u8> = secret.clone().into_bytes();
    let middle = wrong.len() / 2;
    wrong[middle] = if wrong[middle] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong)?;
    // A well-formed client id no one registered.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let unknown = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    );
    let kind = |name, body| Kind {
        name,
        body,
        micros: Vec::new(),
    };
    Ok(vec![
        kind("wrong secret, right length", form(&client, &wrong)),
        kind("wrong secret, 8 characters", form(&client, "clavis_x")),
        kind(
            "wrong secret, 512 characters",
            form(&client, &"x".repeat(512)),
        ),
        kind("unknown client", form(&unknown, &wrong)),
    ])
}

/// Send `samples` requests of every kind in random order on one connection.
pub async fn run(target: &Target, kinds: &mut [Kind], samples: usize) -> anyhow::Result<()> {
    let mut sender = connect(target, 0).await?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut left: Vec<usize> = vec![samples; kinds.len()];
    // Warm up every path first.
    for kind in kinds.iter() {
        for _ in 0..200 {
            token(&mut sender, target, kind.body.clone()).await?;
        }
    }
    while left.iter().any(|&n| n > 0) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = (state % kinds.len() as u64) as usize;
        if left[pick] == 0 {
            continue;
        }
        left[pick] -= 1;
        let body = kinds[pick].body.clone();
        let start = Instant::now();
        let ok = token(&mut sender, target, body).await?;
        let took = start.elapsed().as_secs_f64() * 1e6;
        anyhow::ensure!(!ok, "a refused request got a token");
        kinds[pick].micros.push(took);
    }
    Ok(())
}

/// Mean, variance and count of the samples at or under `cut`.
fn moments(samples: &[f64], cut: f64) -> (f64, f64, f64) {
    let kept: Vec<f64> = samples.iter().copied().filter(|&x| x <= cut).collect();
    let n = kept.len() as f64;
    let mean = kept.iter().sum::<f64>() / n;
    let var = kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var, n)
}

/// Welch's t of `b` against `a`, both cropped at the 90th percentile of all
/// samples.
pub fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    let cut = all[(all.len() as f64 * 0.9) as usize];
    let (ma, va, na) = moments(a, cut);
    let (mb, vb, nb) = moments(b, cut);
    (mb - ma) / (va / na + vb / nb).sqrt()
}

pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_t_tells_shifted_samples_from_equal_ones() {
        let a: Vec<f64> = (0..1000).map(|i| 100.0 + f64::from(i % 10)).collect();
        let same: Vec<f64> = (0..1000).map(|i| 100.0 + f64::from((i + 3) % 10)).collect();
        let shifted: Vec<f64> = a.iter().map(|x| x + 2.0).collect();
        assert!(welch_t(&a, &same).abs() < 4.5);
        assert!(welch_t(&a, &shifted) > 10.0);
    }

    #[test]
    fn kinds_come_from_a_token_body() {
        let body =
            b"grant_type=client_credentials&client_id=abc&client_secret=clavis_SECRET&scope=x";
        let kinds = kinds(body).unwrap();
        assert_eq!(kinds.len(), 4);
        let wrong = std::str::from_utf8(&kinds[0].body).unwrap();
        assert!(wrong.contains("client_id=abc") && !wrong.contains("clavis_SECRET"));
        let unknown = std::str::from_utf8(&kinds[3].body).unwrap();
        assert!(!unknown.contains("client_id=abc&"), "{unknown}");
        assert!(
            unknown.contains("client_secret=clavisASECRET&"),
            "{unknown}"
        );
    }
}
