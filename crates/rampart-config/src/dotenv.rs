//! `.env` files: parsed for `${VAR}` interpolation (`server.env_file`), linted by
//! `rampart preflight` (the dotenv-linter rules), and rewritten in place by
//! `rampart secrets` without touching any other byte.
//!
//! The accepted syntax is the common subset of python-dotenv, docker compose and
//! dotenv-linter: `KEY=value`, an optional `export ` prefix, `#` comments, single quotes
//! (literal), double quotes (`\n`, `\"`, `\\` escapes), and ` #` starting a comment after an
//! unquoted value. A quoted value may span lines (a PEM key, as python-dotenv and compose
//! read it); an unquoted one ends at its line.

use std::ops::Range;

/// A parsed file that remembers its exact text.
#[derive(Debug, Clone)]
pub struct EnvFile {
    text: String,
    /// One entry per line, in order.
    pub lines: Vec<EnvLine>,
}

/// One line.
#[derive(Debug, Clone)]
pub struct EnvLine {
    /// 1-based line number.
    pub number: usize,
    /// Byte range of the line in the file, without its line ending.
    pub span: Range<usize>,
    /// The assignment on this line, if it is one.
    pub entry: Option<Entry>,
}

/// `KEY=value`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key as written (after `export `, trimmed).
    pub key: String,
    /// The value, unquoted and unescaped.
    pub value: String,
    /// Byte range of the value as written (quotes included) in the file.
    pub value_span: Range<usize>,
    /// `'` or `"` when the value was quoted.
    pub quote: Option<char>,
    /// Whether `=` was missing (`KEY` alone).
    pub no_equals: bool,
}

impl EnvFile {
    /// Parses `text`. Never fails: every line is kept; lines that are not assignments have
    /// no entry, and [`lint`] names what is wrong with them.
    pub fn parse(text: &str) -> Self {
        let mut lines = Vec::new();
        let (mut start, mut number) = (0, 1);
        while start < text.len() {
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            let (entry, end) = parse_entry(text, start, line_end);
            let content_end = if text[..end].ends_with('\r') {
                end - 1
            } else {
                end
            };
            lines.push(EnvLine {
                number,
                span: start..content_end,
                entry,
            });
            number += text[start..end].matches('\n').count() + 1;
            start = (end + 1).min(text.len());
        }
        Self {
            text: text.to_owned(),
            lines,
        }
    }

    /// The original text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text of line `l`.
    pub fn line_text(&self, l: &EnvLine) -> &str {
        &self.text[l.span.clone()]
    }

    /// Assignments in file order (a repeated key appears twice).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.lines.iter().filter_map(|l| l.entry.as_ref())
    }

    /// The value of `key` (the last assignment wins, as in docker compose).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .filter(|e| e.key == key && !e.no_equals)
            .last()
            .map(|e| e.value.as_str())
    }

    /// The file with some values replaced (`(value_span, new value)`), every other byte
    /// unchanged. New values keep the quote style of the old ones; a value that would
    /// need quoting is double-quoted.
    pub fn rewrite(&self, changes: &[(Range<usize>, String)]) -> String {
        let mut sorted: Vec<&(Range<usize>, String)> = changes.iter().collect();
        sorted.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut at = 0;
        for (r, v) in sorted {
            out.push_str(&self.text[at..r.start]);
            let old = &self.text[r.clone()];
            let quote = old.chars().next().filter(|c| *c == '"' || *c == '\'');
            let plain = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@,%~".contains(&b));
            match quote {
                Some(q) if !v.contains(q) && !v.contains('\\') => {
                    out.push(q);
                    out.push_str(v);
                    out.push(q);
                }
                _ if plain => out.push_str(v),
                _ => {
                    out.push('"');
                    out.push_str(&v.replace('\\', "\\\\").replace('"', "\\\""));
                    out.push('"');
                }
            }
            at = r.end;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

/// The entry starting at `start` (its first line ends at `line_end`) and where its last
/// line ends: a quoted value may span lines, as python-dotenv and compose allow.
fn parse_entry(text: &str, start: usize, line_end: usize) -> (Option<Entry>, usize) {
    let content = text[start..line_end].trim_end_matches('\r');
    let trimmed = content.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return (None, line_end);
    }
    let lead = content.len() - trimmed.len();
    let (body, body_at) = match trimmed.strip_prefix("export ") {
        Some(rest) => (rest, lead + 7),
        None => (trimmed, lead),
    };
    let Some(eq) = body.find('=') else {
        let entry = Entry {
            key: body.trim().to_owned(),
            value: String::new(),
            value_span: start + content.len()..start + content.len(),
            quote: None,
            no_equals: true,
        };
        return (Some(entry), line_end);
    };
    let key = body[..eq].trim().to_owned();
    let after = &body[eq + 1..];
    let skip = after.len() - after.trim_start().len();
    let v_at = body_at + eq + 1 + skip;
    let raw = &content[v_at..];
    let mut end = line_end;
    let (value, len, quote) = match raw.chars().next() {
        Some(q @ ('"' | '\'')) => {
            // The closing quote on this line, or on a later one.
            let rest = &text[start + v_at..];
            match closing(raw, q).or_else(|| closing(rest, q)) {
                Some(close) => {
                    let inner = &rest[1..close];
                    let v = if q == '"' {
                        unescape(inner)
                    } else {
                        inner.to_owned()
                    };
                    let close_at = start + v_at + close;
                    end = text[close_at..]
                        .find('\n')
                        .map_or(text.len(), |i| close_at + i);
                    (v, close + 1, Some(q))
                }
                None => (raw.to_owned(), raw.len(), None),
            }
        }
        _ => {
            let cut = raw
                .char_indices()
                .find(|(i, c)| *c == '#' && *i > 0 && raw[..*i].ends_with([' ', '\t']))
                .map_or(raw.len(), |(i, _)| i);
            let v = raw[..cut].trim_end();
            (v.to_owned(), v.len(), None)
        }
    };
    let entry = Entry {
        key,
        value,
        value_span: start + v_at..start + v_at + len,
        quote,
        no_equals: false,
    };
    (Some(entry), end)
}

fn closing(raw: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in raw.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A lint finding (dotenv-linter's rule names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// 1-based line.
    pub line: usize,
    /// dotenv-linter rule name (`DuplicatedKey`, …).
    pub rule: &'static str,
    /// Whether the file means something other than what was written (an error), or is
    /// only untidy.
    pub error: bool,
    /// What is wrong.
    pub message: String,
}

/// The dotenv-linter rules. `DuplicatedKey`, `KeyWithoutValue`, `IncorrectDelimiter` and
/// `SubstitutionKey` change what the file means and are errors; the rest is style.
pub fn lint(file: &EnvFile) -> Vec<Lint> {
    let mut out = Vec::new();
    let mut push = |line: usize, rule: &'static str, error: bool, message: String| {
        out.push(Lint {
            line,
            rule,
            error,
            message,
        });
    };
    let mut seen = std::collections::HashMap::new();
    let mut previous_blank = false;
    let mut block_last: Option<String> = None;
    for l in &file.lines {
        let text = file.line_text(l);
        let n = l.number;
        if text.ends_with([' ', '\t']) {
            push(n, "TrailingWhitespace", false, "trailing whitespace".into());
        }
        if text.trim().is_empty() {
            if previous_blank {
                push(n, "ExtraBlankLine", false, "extra blank line".into());
            }
            previous_blank = true;
            block_last = None;
            continue;
        }
        previous_blank = false;
        let Some(e) = &l.entry else {
            block_last = None;
            continue;
        };
        if !text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            push(
                n,
                "LeadingCharacter",
                false,
                "a line should start with a letter or '_'".into(),
            );
        }
        if e.no_equals {
            push(
                n,
                "KeyWithoutValue",
                true,
                format!("{} has no '=': write {}= for an empty value", e.key, e.key),
            );
            continue;
        }
        let key_ok = !e.key.is_empty()
            && e.key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            push(
                n,
                "IncorrectDelimiter",
                true,
                format!(
                    "key {:?} has characters other than letters, digits and '_'",
                    e.key
                ),
            );
        }
        if e.key != e.key.to_ascii_uppercase() {
            push(
                n,
                "LowercaseKey",
                false,
                format!("{} is not upper case", e.key),
            );
        }
        let eq_at = text.find('=').unwrap_or(0);
        if text[..eq_at].ends_with([' ', '\t']) || text[eq_at + 1..].starts_with([' ', '\t']) {
            push(n, "SpaceCharacter", false, "spaces around '='".into());
        }
        if let Some(q) = e.quote {
            let needs = e.value.is_empty()
                || e.value.contains(char::is_whitespace)
                || e.value.contains(['#', '$', '"', '\'', '\\']);
            if !needs {
                push(
                    n,
                    "QuoteCharacter",
                    false,
                    format!("the value needs no {q} quotes"),
                );
            }
        } else if e.value.contains(char::is_whitespace) {
            push(
                n,
                "ValueWithoutQuotes",
                false,
                "a value with whitespace should be quoted".into(),
            );
        }
        if e.quote != Some('\'') {
            if let Some(msg) = substitution_problem(&e.value) {
                push(n, "SubstitutionKey", true, msg);
            }
        }
        if let Some(first) = seen.insert(e.key.clone(), n) {
            push(
                n,
                "DuplicatedKey",
                true,
                format!(
                    "{} is already set on line {first}; the later one wins",
                    e.key
                ),
            );
        }
        if let Some(prev) = &block_last {
            if e.key < *prev && key_ok {
                push(
                    n,
                    "UnorderedKey",
                    false,
                    format!("{} should come before {prev}", e.key),
                );
            }
        }
        block_last = Some(e.key.clone());
    }
    if !file.text.is_empty() && !file.text.ends_with('\n') {
        push(
            file.lines.len(),
            "EndingBlankLine",
            false,
            "no newline at the end of the file".into(),
        );
    }
    out
}

fn substitution_problem(v: &str) -> Option<String> {
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        let body = &rest[i + 2..];
        let Some(end) = body.find('}') else {
            return Some(format!("`${{` without a closing `}}` in {v:?}"));
        };
        let name = body[..end].split(":-").next().unwrap_or("");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Some(format!("invalid variable name {name:?} in {v:?}"));
        }
        rest = &body[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms_and_rewrites_only_values() {
        let text = "# c\nA=1\nexport B = two # note\nC=\"x y\\\"z\"\nD='lit $x'\n\nE\nF=\r\n";
        let f = EnvFile::parse(text);
        assert_eq!(f.get("A"), Some("1"));
        assert_eq!(f.get("B"), Some("two"));
        assert_eq!(f.get("C"), Some("x y\"z"));
        assert_eq!(f.get("D"), Some("lit $x"));
        assert_eq!(f.get("E"), None);
        assert_eq!(f.get("F"), Some(""));
        let b = f
            .entries()
            .find(|e| e.key == "B")
            .map(|e| e.value_span.clone());
        let d = f
            .entries()
            .find(|e| e.key == "D")
            .map(|e| e.value_span.clone());
        let f_span = f
            .entries()
            .find(|e| e.key == "F")
            .map(|e| e.value_span.clone());
        let out = f.rewrite(&[
            (b.unwrap_or_default(), "NEW".into()),
            (d.unwrap_or_default(), "q".into()),
            (f_span.unwrap_or_default(), "has space".into()),
        ]);
        assert_eq!(
            out,
            "# c\nA=1\nexport B = NEW # note\nC=\"x y\\\"z\"\nD='q'\n\nE\nF=\"has space\"\r\n"
        );
    }

    #[test]
    fn lint_names_dotenv_linter_rules() {
        let f = EnvFile::parse(
            "B=1\nA=2\nA=3\nlower=x\nBAD-KEY=1\nNOEQ\nS=${OPEN\nQ=\"plain\"\n\n\nT=1 ",
        );
        let rules: Vec<(&str, bool)> = lint(&f).iter().map(|l| (l.rule, l.error)).collect();
        for r in [
            ("UnorderedKey", false),
            ("DuplicatedKey", true),
            ("LowercaseKey", false),
            ("IncorrectDelimiter", true),
            ("KeyWithoutValue", true),
            ("SubstitutionKey", true),
            ("QuoteCharacter", false),
            ("ExtraBlankLine", false),
            ("TrailingWhitespace", false),
            ("EndingBlankLine", false),
        ] {
            assert!(rules.contains(&r), "{r:?} missing from {rules:?}");
        }
        assert!(lint(&EnvFile::parse("A=1\nB=2\n")).is_empty());
    }

    #[test]
    fn quoted_values_may_span_lines_as_in_python_dotenv() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
        let text = format!(
            "A=1\nLICENSE_PUBLIC_KEY=\"{pem}\"\nB='x\ny'\r\nC=\"open \\\" quote\nstill\"\nD=4\n"
        );
        let f = EnvFile::parse(&text);
        assert_eq!(f.get("LICENSE_PUBLIC_KEY"), Some(pem));
        assert_eq!(f.get("B"), Some("x\ny"));
        assert_eq!(f.get("C"), Some("open \" quote\nstill"));
        assert_eq!(f.get("D"), Some("4"));
        let numbers: Vec<(usize, Option<&str>)> = f
            .lines
            .iter()
            .map(|l| (l.number, l.entry.as_ref().map(|e| e.key.as_str())))
            .collect();
        assert_eq!(
            numbers,
            [
                (1, Some("A")),
                (2, Some("LICENSE_PUBLIC_KEY")),
                (5, Some("B")),
                (7, Some("C")),
                (9, Some("D"))
            ]
        );
        assert!(lint(&f).iter().all(|l| !l.error), "{:?}", lint(&f));
        // Rewriting a multi-line value keeps every other byte.
        let span = f
            .entries()
            .find(|e| e.key == "B")
            .unwrap()
            .value_span
            .clone();
        let out = f.rewrite(&[(span, "z".into())]);
        assert_eq!(out, text.replace("'x\ny'", "'z'"));
        // An unterminated quote stays a one-line value and is not swallowing the file.
        let f = EnvFile::parse("A=\"open\nB=2\n");
        assert_eq!(f.get("B"), Some("2"));
    }
}
