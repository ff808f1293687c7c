//! Dockerfile syntax, as docker's own parser (moby/buildkit's `parser` and
//! `shell` packages) reads it.
//!
//! Written here rather than taken from crates.io's `dockerfile-parser` (0.9): that
//! crate's grammar hard-codes `\` as the line continuation (no `escape` parser
//! directive, so Windows-style `` ` `` Dockerfiles misparse), leaves `ADD`, `WORKDIR`,
//! `USER`, `EXPOSE`, `VOLUME`, `SHELL`, `ONBUILD`, `STOPSIGNAL` and `HEALTHCHECK` as
//! unparsed "misc" text, and accepts any unknown word as a "misc" instruction, where
//! docker refuses it naming the line. What a build needs from the syntax is small (a
//! line splitter, flags, the JSON form, variable expansion), and owning it keeps the
//! error messages ours.
//!
//! * Parser directives (`# escape=`` ` ``, `# syntax=…`) are read from the comment
//!   lines at the very top only, as docker reads them.
//! * Comments are lines whose first non-blank is `#`; a line ending with the escape
//!   character continues on the next; comment and empty lines inside a continued
//!   instruction are skipped.
//! * An instruction is its word (any case), its `--flag=value`s (for the
//!   instructions that take flags) and its arguments: the JSON (exec) form when they
//!   parse as a JSON array of strings, the shell form otherwise.
//! * [`expand`] substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//!   `${VAR:+alt}`, `${VAR+alt}` and `${VAR:?message}` outside single quotes; the escape
//!   character keeps a `$` literal.

use std::collections::BTreeMap;

use crate::error::BuildError;

/// The instructions docker knows.
pub const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "ARG",
    "ENV",
    "LABEL",
    "WORKDIR",
    "USER",
    "RUN",
    "SHELL",
    "COPY",
    "ADD",
    "CMD",
    "ENTRYPOINT",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// Its word, upper case (`RUN`).
    pub keyword: String,
    /// `--name=value` flags given before the arguments.
    pub flags: Vec<(String, String)>,
    /// The arguments as written (continuations joined), flags removed.
    pub args: String,
    /// The arguments' JSON (exec) form, when they are one.
    pub json: Option<Vec<String>>,
    /// The instruction's text as docker prints it in `Step N/M : …`.
    pub original: String,
}

impl Instruction {
    /// The value of flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` unless the `escape` directive said `` ` ``).
    pub escape: char,
    /// Its instructions, in order.
    pub instructions: Vec<Instruction>,
}

/// The instructions whose leading `--flags` are flags.
const TAKES_FLAGS: [&str; 5] = ["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"];

/// Parses Dockerfile text. `name` names the file in errors.
pub fn parse(text: &str, name: &str) -> Result<Dockerfile, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut first = 0;
    // Directives: `# key=value` comment lines before anything else.
    for (i, line) in lines.iter().enumerate() {
        let Some(body) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = body.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        match key.as_str() {
            "escape" => {
                escape = match value.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(BuildError::Syntax {
                            file: name.to_string(),
                            line: i + 1,
                            message: format!("invalid escape token `{other}`: use `\\` or `` ` ``"),
                        });
                    }
                }
            }
            // The frontend image: this builder is its own frontend.
            "syntax" | "check" => {}
            _ => break,
        }
        first = i + 1;
    }
    let mut instructions = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let start = i;
        let line = lines[i];
        i += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut joined = String::new();
        let mut current = trimmed.trim_end().to_string();
        loop {
            match current.strip_suffix(escape) {
                Some(body) => {
                    joined.push_str(body);
                    // Comment and empty lines inside a continuation are skipped.
                    while i < lines.len() {
                        let next = lines[i].trim_start();
                        if next.is_empty() || next.starts_with('#') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    if i >= lines.len() {
                        break;
                    }
                    current = lines[i].trim_end().to_string();
                    i += 1;
                }
                None => {
                    joined.push_str(&current);
                    break;
                }
            }
        }
        instructions.push(instruction(&joined, start + 1, name)?);
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// One instruction from its joined text.
fn instruction(text: &str, line: usize, name: &str) -> Result<Instruction, BuildError> {
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim_start()));
    let keyword = word.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&keyword.as_str()) {
        return Err(BuildError::Syntax {
            file: name.to_string(),
            line,
            message: format!("unknown instruction: {word}"),
        });
    }
    let mut flags = Vec::new();
    let mut args = rest;
    if TAKES_FLAGS.contains(&keyword.as_str()) {
        while let Some(flag) = args.strip_prefix("--") {
            let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
            let (k, v) = flag[..end]
                .split_once('=')
                .unwrap_or((&flag[..end], "true"));
            flags.push((k.to_string(), v.to_string()));
            args = flag[end..].trim_start();
        }
    }
    let json = args
        .starts_with('[')
        .then(|| serde_json::from_str::<Vec<String>>(args).ok())
        .flatten();
    Ok(Instruction {
        line,
        original: text.to_string(),
        keyword,
        flags,
        args: args.to_string(),
        json,
    })
}

/// Substitutes variables in `text` from `vars` as docker does for the instructions
/// that expand them (see the module's documentation). Quotes and escapes stay, for
/// the word splitting that follows.
pub fn expand(text: &str, vars: &BTreeMap<String, String>, escape: char) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut single = false;
    let mut double = false;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && !single && i + 1 < chars.len() {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '$' if !single => {
                let (value, used) = variable(&chars[i + 1..], vars, escape)?;
                if used > 0 {
                    out.push_str(&value);
                    i += 1 + used;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// The variable reference after a `$`: its value and how many characters it took
/// (0: not a reference, the `$` stays).
fn variable(
    chars: &[char],
    vars: &BTreeMap<String, String>,
    escape: char,
) -> Result<(String, usize), String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.first() == Some(&'{') {
        let mut depth = 0;
        let close = chars
            .iter()
            .position(|&c| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .ok_or("missing '}' in a ${…} substitution")?;
        let inner: String = chars[1..close].iter().collect();
        let name_len = inner.chars().take_while(|&c| is_name(c)).count();
        let name = &inner[..name_len];
        if name.is_empty() {
            return Err(format!("bad substitution: ${{{inner}}}"));
        }
        let rest = &inner[name_len..];
        let value = vars.get(name);
        let set = value.is_some();
        let non_empty = value.is_some_and(|v| !v.is_empty());
        let word = |w: &str| expand(w, vars, escape).map(|w| unquote(&w));
        let result = if rest.is_empty() {
            value.cloned().unwrap_or_default()
        } else if let Some(w) = rest.strip_prefix(":-") {
            if non_empty {
                value.cloned().unwrap_or_default()
            } else {
                word(w)?
            }
        } else if let Some(w) = rest.strip_prefix('-') {
            if set {
                value.cloned().unwrap_or_default()
            } else {
                word(w)?
            }
        } else if let Some(w) = rest.strip_prefix(":+") {
            if non_empty { word(w)? } else { String::new() }
        } else if let Some(w) = rest.strip_prefix('+') {
            if set { word(w)? } else { String::new() }
        } else if let Some(w) = rest.strip_prefix(":?") {
            if non_empty {
                value.cloned().unwrap_or_default()
            } else {
                return Err(format!(
                    "{name}: {}",
                    if w.is_empty() { "is not set" } else { w }
                ));
            }
        } else {
            return Err(format!(
                "unsupported modifier ({rest}) in substitution ${{{inner}}}"
            ));
        };
        return Ok((result, close + 1));
    }
    let len = chars.iter().take_while(|&&c| is_name(c)).count();
    if len == 0 {
        return Ok((String::new(), 0));
    }
    let name: String = chars[..len].iter().collect();
    Ok((vars.get(&name).cloned().unwrap_or_default(), len))
}

/// A default's quotes removed (`${A:-"x y"}` gives `x y`).
fn unquote(word: &str) -> String {
    let w = word.trim();
    for q in ['"', '\''] {
        if w.len() >= 2 && w.starts_with(q) && w.ends_with(q) {
            return w[1..w.len() - 1].to_string();
        }
    }
    word.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lines_continue_and_comments_drop() {
        let file = parse(
            "# syntax=docker/dockerfile:1\nFROM busybox AS base\n# a comment\nRUN echo a \\\n  # inside\n\n  && echo b\ncmd [\"sh\", \"-c\", \"x\"]\nCOPY --chown=1:2 --from=base a b\n",
            "Dockerfile",
        )
        .unwrap();
        let words: Vec<_> = file
            .instructions
            .iter()
            .map(|i| i.keyword.as_str())
            .collect();
        assert_eq!(words, ["FROM", "RUN", "CMD", "COPY"]);
        assert_eq!(file.instructions[1].args, "echo a   && echo b");
        assert_eq!(file.instructions[1].line, 4);
        assert_eq!(
            file.instructions[2].json,
            Some(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(file.instructions[3].flag("chown"), Some("1:2"));
        assert_eq!(file.instructions[3].flag("from"), Some("base"));
        assert_eq!(file.instructions[3].args, "a b");
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let file = parse("# escape=`\nFROM x\nRUN echo a `\n b\\c\n", "D").unwrap();
        assert_eq!(file.escape, '`');
        assert_eq!(file.instructions[1].args, "echo a  b\\c");
        // A directive after an instruction is only a comment.
        let file = parse("FROM x\n# escape=`\nRUN a \\\n b\n", "D").unwrap();
        assert_eq!(file.escape, '\\');
        assert_eq!(file.instructions[1].args, "a  b");
    }

    #[test]
    fn unknown_instructions_name_themselves_and_their_line() {
        let e = parse("FROM x\n\nFROBNICATE y\n", "Dockerfile").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("FROBNICATE") && text.contains("line 3"),
            "{text}"
        );
    }

    #[test]
    fn variables_expand_as_dockers() {
        let v = vars(&[("A", "1"), ("E", "")]);
        assert_eq!(expand("$A ${A} x${A}y", &v, '\\').unwrap(), "1 1 x1y");
        assert_eq!(
            expand("${B:-def} ${E:-def} ${E-def}", &v, '\\').unwrap(),
            "def def "
        );
        assert_eq!(
            expand("${A:+alt} ${E:+alt} ${E+alt}", &v, '\\').unwrap(),
            "alt  alt"
        );
        assert_eq!(
            expand("'$A' \"$A\" \\$A", &v, '\\').unwrap(),
            "'$A' \"1\" \\$A"
        );
        assert_eq!(expand("${B:-${A}}", &v, '\\').unwrap(), "1");
        assert!(
            expand("${B:?needed}", &v, '\\')
                .unwrap_err()
                .contains("needed")
        );
        assert!(expand("${A", &v, '\\').is_err());
        assert_eq!(expand("$ and $Zx", &v, '\\').unwrap(), "$ and ");
    }
}
