//! The management API's query strings (graph/json.rs, listing.rs,
//! audit_logs.rs, webhooks.rs): OData options, `$filter` clauses and
//! `$skiptoken`s never panic and their errors stay short; a literal quoted
//! as OData does reads back as itself; a skiptoken that parses re-formats
//! (as the nextLink builder writes it) to the same position; `encode_query`
//! decodes back.
#![no_main]

use clavis::form::percent_decode;
use clavis::fuzzing;
use clavis::graph::encode_query;
use clavis::graph::error::GraphError;
use clavis::graph::json::{eq_clause, quoted, ListQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let parsed = ListQuery::parse(Some(text));
    if let Err(GraphError::BadRequest(m)) = &parsed {
        assert!(m.len() <= 1024, "error message of {} bytes", m.len());
    }
    if let Ok(q) = parsed {
        assert!((1..=999).contains(&q.page_size()));
        if let Some(filter) = &q.filter {
            for clause in filter.split(" and ") {
                let _ = eq_clause(clause, "appId");
                let _ = eq_clause(clause, "displayName");
                let _ = fuzzing::uri_clause(clause);
            }
        }
    }

    // OData literals: quote any text and read it back.
    let literal = format!("'{}'", text.replace('\'', "''"));
    assert_eq!(quoted(&literal).as_deref(), Some(text));
    assert_eq!(
        eq_clause(&format!("displayName eq {literal}"), "displayName").as_deref(),
        Some(text)
    );
    let any = format!("identifierUris/any(x:x eq {literal})");
    assert_eq!(fuzzing::uri_clause(&any).as_deref(), Some(text));
    let _ = quoted(text);

    // nextLink values round-trip.
    assert_eq!(
        percent_decode(encode_query(text).as_bytes()).as_deref(),
        Some(text)
    );
    for parse in [fuzzing::audit_skiptoken, fuzzing::deliveries_skiptoken] {
        if let Ok((at, id)) = parse(text) {
            let again = format!("{}_{id}", at.unix_timestamp_nanos() / 1000);
            let (at2, id2) = parse(&again).expect("a re-formatted skiptoken parses");
            assert_eq!((at2, id2), (at, id));
        }
    }
});
