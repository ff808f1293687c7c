//! `.dockerignore`, with docker's rules (moby's `patternmatcher`): one pattern a
//! line, `#` comments, a leading `/` and `./` dropped and the pattern cleaned; `*` and
//! `?` do not cross `/`, `**` crosses any number of directories, `[…]` is a class;
//! `!` makes an exception; the last pattern that matches a path decides. A pattern
//! that matches a directory matches everything below it.

/// The parsed patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<(String, bool)>,
}

impl Ignore {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (pattern, exception) = match l.strip_prefix('!') {
                    Some(rest) => (rest.trim(), true),
                    None => (l, false),
                };
                let clean = clean(pattern);
                (!clean.is_empty()).then_some((clean, exception))
            })
            .collect();
        Ignore { patterns }
    }

    /// Whether the context path `path` (relative, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (pattern, exception) in &self.patterns {
            if matches_or_parent(pattern, path) {
                excluded = !exception;
            }
        }
        excluded
    }

    /// Whether any pattern is an exception (then an excluded directory must still be
    /// walked, for what the exception brings back).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, e)| *e)
    }
}

/// A path cleaned as Go's `filepath.Clean`, then relative.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether `pattern` matches `path` or one of its parent directories.
fn matches_or_parent(pattern: &str, path: &str) -> bool {
    if glob(pattern, path) {
        return true;
    }
    path.match_indices('/')
        .any(|(i, _)| glob(pattern, &path[..i]))
}

/// Matches `text` against a glob `pattern`: `*`, `?`, `[…]` (with `!`/`^`
/// negation and ranges) within one path element, `**` across elements.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                // `**/` also matches no directory at all.
                let rest = &p[2..];
                if let Some(after) = rest.strip_prefix(b"/")
                    && go(after, t)
                {
                    return true;
                }
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=t.len() {
                    if go(rest, &t[i..]) {
                        return true;
                    }
                    if i < t.len() && t[i] == b'/' {
                        break;
                    }
                }
                false
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(b'[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == b']').map(|e| e + 1) else {
                    return !t.is_empty() && t[0] == b'[' && go(&p[1..], &t[1..]);
                };
                if t.is_empty() || t[0] == b'/' {
                    return false;
                }
                let mut class = &p[1..end];
                let negate = matches!(class.first(), Some(b'!' | b'^'));
                if negate {
                    class = &class[1..];
                }
                let c = t[0];
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &t[1..])
            }
            Some(b'\\') if p.len() > 1 => !t.is_empty() && t[0] == p[1] && go(&p[2..], &t[1..]),
            Some(&c) => !t.is_empty() && t[0] == c && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_gos() {
        assert!(glob("*.txt", "a.txt"));
        assert!(!glob("*.txt", "d/a.txt"));
        assert!(glob("**/*.txt", "d/e/a.txt"));
        assert!(glob("**/*.txt", "a.txt"));
        assert!(glob("d/**", "d/e/f"));
        assert!(glob("a?c", "abc"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
    }

    #[test]
    fn the_last_matching_pattern_decides() {
        let ignore = Ignore::parse("# comment\n*.log\n!keep.log\nsecret/\n/build\n**/tmp\n");
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("keep.log"));
        assert!(ignore.excludes("secret"));
        assert!(ignore.excludes("secret/key"));
        assert!(ignore.excludes("build/out"));
        assert!(ignore.excludes("x/y/tmp/z"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(!ignore.excludes("d/a.log"));
        let later = Ignore::parse("!keep.log\n*.log\n");
        assert!(later.excludes("keep.log"));
    }
}
