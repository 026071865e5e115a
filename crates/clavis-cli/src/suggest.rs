//! "Did you mean …?": the names closest to a mistyped one (application names,
//! role values, secret and webhook names), by edit distance without case.

/// At most this many suggestions.
const MAX: usize = 3;

/// The candidates closest to `typed`, at most three equally close ones:
/// among those within an edit distance of a third of its length (at least
/// 2), compared without case, and those that contain it or that it contains
/// (3 characters or more, counted as that distance), the nearest.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let typed = typed.trim().to_lowercase();
    if typed.is_empty() {
        return Vec::new();
    }
    let limit = (typed.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for candidate in candidates {
        let lower = candidate.to_lowercase();
        if candidate.is_empty() || scored.iter().any(|(_, c)| *c == candidate) {
            continue;
        }
        let distance = strsim::damerau_levenshtein(&typed, &lower);
        let contains = typed.chars().count() >= 3
            && lower.chars().count() >= 3
            && (lower.contains(&typed) || typed.contains(&lower));
        if distance <= limit {
            scored.push((distance, candidate));
        } else if contains {
            scored.push((limit, candidate));
        }
    }
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    let best = scored.first().map_or(0, |(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| *d == best)
        .take(MAX)
        .map(|(_, c)| c)
        .collect()
}

/// `did you mean 'a'?` or `did you mean 'a', 'b' or 'c'?`; `None` without candidates.
pub fn did_you_mean(names: &[&str]) -> Option<String> {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [init @ .., last] => Some(format!("did you mean {} or {last}?", init.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_transpositions_and_case_are_close() {
        let roles = ["Orders.Read", "Orders.Write", "Invoices.Read"];
        assert_eq!(closest("Orders.Raed", roles), vec!["Orders.Read"]);
        assert_eq!(closest("orders.read", roles), vec!["Orders.Read"]);
        assert_eq!(closest("Orders.Wirte", roles), vec!["Orders.Write"]);
        assert!(closest("Payments.Admin", roles).is_empty());
        assert!(closest("", roles).is_empty());
    }

    #[test]
    fn names_containing_what_was_typed_count_and_the_best_come_first() {
        let apps = ["Billing worker", "Billing API", "Orders API", "Orders API"];
        assert_eq!(
            closest("billing", apps),
            vec!["Billing API", "Billing worker"]
        );
        assert_eq!(closest("Orders AP", apps), vec!["Orders API"]);
        assert_eq!(closest("Order API", apps), vec!["Orders API"]);
    }

    #[test]
    fn phrasing() {
        assert_eq!(did_you_mean(&[]), None);
        assert_eq!(did_you_mean(&["a"]).unwrap(), "did you mean 'a'?");
        assert_eq!(
            did_you_mean(&["a", "b", "c"]).unwrap(),
            "did you mean 'a', 'b' or 'c'?"
        );
    }
}
