//! Asking before a destructive command (`app delete`, `secret remove`, …):
//! only when stdin is a terminal and `--yes` was not given, so scripts and
//! pipes keep working without a question.

use std::io::{BufRead, IsTerminal as _, Write};

use crate::error::Error;

/// Ask `question` on a terminal unless `yes`; `Ok` to go on, an error to stop.
pub fn unless_yes(yes: bool, question: &str) -> Result<(), Error> {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    ask(
        question,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// Write `question? … [y/N] ` to `out` and read one line of `input`:
/// `y` or `yes` (any case) goes on, anything else (or nothing) cancels.
pub fn ask(question: &str, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), Error> {
    // Nothing sensible is left to do if the prompt cannot be written.
    let _ = write!(
        out,
        "{question}? Whatever still uses it stops working. [y/N] "
    );
    let _ = out.flush();
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| Error::new(format!("cannot read the answer from stdin: {e}")))?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => {
            Err(Error::new("cancelled; nothing was changed")
                .hint("pass --yes to skip the question"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> (Result<(), Error>, String) {
        let mut out = Vec::new();
        let result = ask("Delete 'orders'", &mut text.as_bytes(), &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn only_yes_goes_on() {
        let (ok, prompt) = answer("y\n");
        assert!(ok.is_ok());
        assert_eq!(
            prompt,
            "Delete 'orders'? Whatever still uses it stops working. [y/N] "
        );
        assert!(answer("YES\n").0.is_ok());
        for no in ["n\n", "\n", "", "yep\n"] {
            let err = answer(no).0.unwrap_err();
            assert_eq!(err.reason(), "cancelled; nothing was changed", "{no:?}");
            assert!(err.hint_text().unwrap().contains("--yes"));
        }
    }
}
