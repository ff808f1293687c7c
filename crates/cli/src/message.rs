//! An error as the user reads it: its chain of causes on one line, each said once.

use std::error::Error;

/// `error: cause: its cause: ...`, as anyhow's `{:#}` prints it, except that a cause
/// the message before it already ends with is left out. Many errors print their source
/// in their own message and also return it from `source()` (reqwest's, and ours of the
/// `"... failed: {source}"` kind), which would otherwise show every such cause twice.
pub(crate) fn chain(error: &anyhow::Error) -> String {
    said_once(error.chain())
}

fn said_once<'a>(causes: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in causes {
        let text = cause.to_string();
        if text.is_empty() || previous.ends_with(&text) {
            previous = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source in its own message and returns it too.
    #[derive(Debug)]
    struct Request {
        url: &'static str,
        source: std::io::Error,
    }

    impl std::fmt::Display for Request {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "request to {} failed: {}", self.url, self.source)
        }
    }

    impl Error for Request {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_said_is_left_out() {
        let e = anyhow::Error::new(Request {
            url: "http://r/v2/",
            source: std::io::Error::other("connection refused"),
        })
        .context("pulling r/x")
        .context("pulling r/x");
        assert_eq!(
            chain(&e),
            "pulling r/x: request to http://r/v2/ failed: connection refused"
        );
    }

    #[test]
    fn distinct_causes_all_show() {
        let e = anyhow::anyhow!("disk full")
            .context("writing layer")
            .context("pulling r/x");
        assert_eq!(chain(&e), "pulling r/x: writing layer: disk full");
    }
}
