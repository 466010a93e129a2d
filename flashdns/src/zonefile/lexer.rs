//! The pre-pass over a master file: splits the text into logical entries (one directive or one
//! record, however many lines its parentheses span) and remembers the line each entry starts on.
//!
//! hickory's own lexer cannot be used for this: it reports no line numbers, it does not see
//! quoted strings inside parentheses (a multi-line DKIM TXT record falls apart at its first
//! space), and it decodes `\DDD` escapes wrongly. Everything after this pass works on one entry
//! at a time, so every error can name the line its entry started on.

use super::ZoneFileError;

/// One directive or record, with its line structure and comments already removed.
#[derive(Debug)]
pub(super) struct Entry<'a> {
    /// 1-based line the entry starts on.
    pub line: usize,
    /// The entry began with a blank: RFC 1035 §5.1 says it then belongs to the previous owner.
    pub owner_omitted: bool,
    pub tokens: Vec<Token<'a>>,
}

/// One field as written. Escapes are left in place: whether `\.` means "a dot inside a label" or
/// just "a dot" depends on the field, which only the record type knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    /// The text between the quotes for a quoted string, the whole word otherwise.
    pub text: &'a str,
    pub quoted: bool,
}

impl Token<'_> {
    /// An unquoted word equal to `word`; a quoted `"@"` is data, not the origin.
    pub fn is(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }
}

/// Splits `text` into entries; blank lines and comment-only lines produce none.
pub(super) fn entries(text: &str) -> Result<Vec<Entry<'_>>, ZoneFileError> {
    // A byte order mark is what some editors put first; it is not part of any owner name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Every byte the lexer stops at is ASCII, so every slice below falls on a char boundary.
    let bytes = text.as_bytes();
    let mut entries = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut entry: Option<Entry<'_>> = None;
    let mut i = 0;

    while i < bytes.len() {
        let current = entry.get_or_insert_with(|| Entry {
            line,
            owner_omitted: matches!(bytes[i], b' ' | b'\t'),
            tokens: Vec::new(),
        });
        match bytes[i] {
            b'\n' => {
                line += 1;
                i += 1;
                if depth == 0 {
                    if let Some(done) = entry.take().filter(|e| !e.tokens.is_empty()) {
                        entries.push(done);
                    }
                }
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => i = find_newline(bytes, i),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(syntax(current.line, "')' without a matching '('"));
                }
                depth -= 1;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let first_line = current.line;
                i = start;
                loop {
                    match bytes.get(i) {
                        None => return Err(syntax(first_line, "a quoted string is not closed")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            if bytes.get(i + 1) == Some(&b'\n') {
                                line += 1;
                            }
                            i += 2;
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                current.tokens.push(Token { text: &text[start..i], quoted: true });
                i += 1;
            }
            _ => {
                let start = i;
                while let Some(&b) = bytes.get(i) {
                    match b {
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                        // An escaped character never ends the word (`a\ b`, `\;`), but an escaped
                        // line break is not part of any field.
                        b'\\' if bytes.get(i + 1).is_some_and(|&n| n != b'\n') => i += 2,
                        _ => i += 1,
                    }
                }
                let end = i.min(bytes.len());
                current.tokens.push(Token { text: &text[start..end], quoted: false });
                i = end;
            }
        }
    }
    if let Some(open) = entry {
        if depth > 0 {
            return Err(syntax(open.line, "'(' is never closed by a ')'"));
        }
        if !open.tokens.is_empty() {
            entries.push(open);
        }
    }
    Ok(entries)
}

/// Decodes a <character-string> (RFC 1035 §5.1): `\X` is the character X, `\DDD` the octet with
/// decimal value DDD. The result is bytes, not text: TXT data need not be UTF-8.
pub(super) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match decimal_escape(bytes, i)? {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                let escaped = bytes.get(i + 1).ok_or_else(|| format!("{text} ends in a lone backslash"))?;
                out.push(*escaped);
                i += 2;
            }
        }
    }
    Ok(out)
}

/// The value of a `\DDD` escape starting at `at`, `None` if the backslash escapes a non-digit.
pub(super) fn decimal_escape(bytes: &[u8], at: usize) -> Result<Option<u8>, String> {
    let Some(first) = bytes.get(at + 1).filter(|b| b.is_ascii_digit()) else {
        return Ok(None);
    };
    let digits = bytes.get(at + 1..at + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
    let Some(digits) = digits else {
        return Err(format!("bad escape \\{}: \\DDD needs three decimal digits", char::from(*first)));
    };
    let value = digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    u8::try_from(value).map(Some).map_err(|_| format!("bad escape \\{value:03}: above 255"))
}

fn find_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| from + p)
}

fn syntax(line: usize, message: &str) -> ZoneFileError {
    ZoneFileError::Syntax { line, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(entry: &Entry<'a>) -> Vec<&'a str> {
        entry.tokens.iter().map(|t| t.text).collect()
    }

    #[test]
    fn multi_line_record_is_one_entry_starting_on_its_first_line() {
        let text = "; header\n\n@ IN SOA ns1 host ( 1 ; serial\n  3600 ; refresh\n 600 86400 300 )\nwww A 192.0.2.1\n";
        let entries = entries(text).expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 3);
        assert_eq!(words(&entries[0]), ["@", "IN", "SOA", "ns1", "host", "1", "3600", "600", "86400", "300"]);
        assert_eq!(entries[1].line, 6);
    }

    #[test]
    fn quoted_strings_keep_semicolons_parentheses_and_escapes() {
        let text = "k TXT ( \"v=DKIM1; k=rsa; \"\n  \"p=(abc) \\\"q\\\"\" ) ; comment\n";
        let entries = entries(text).expect("valid");
        assert_eq!(entries.len(), 1);
        let tokens = &entries[0].tokens;
        assert_eq!(tokens[2], Token { text: "v=DKIM1; k=rsa; ", quoted: true });
        assert_eq!(tokens[3], Token { text: "p=(abc) \\\"q\\\"", quoted: true });
    }

    #[test]
    fn leading_blank_means_owner_omitted() {
        let entries = entries("www A 192.0.2.1\n\t AAAA 2001:db8::1\n").expect("valid");
        assert!(!entries[0].owner_omitted);
        assert!(entries[1].owner_omitted);
    }

    #[test]
    fn unbalanced_parentheses_and_quotes_name_the_line() {
        let err = entries("a A 192.0.2.1\nb TXT ( \"x\"\nc A 192.0.2.2\n").expect_err("unclosed");
        assert!(matches!(err, ZoneFileError::Syntax { line: 2, .. }), "{err}");
        let err = entries("a A 192.0.2.1\n\nb A 1 )\n").expect_err("stray");
        assert!(matches!(err, ZoneFileError::Syntax { line: 3, .. }), "{err}");
        let err = entries("a TXT \"open\n").expect_err("unterminated");
        assert!(matches!(err, ZoneFileError::Syntax { line: 1, .. }), "{err}");
    }

    #[test]
    fn unescape_decodes_decimal_and_single_escapes() {
        assert_eq!(unescape(r#"a\"b\\c\059\255"#).expect("valid"), b"a\"b\\c;\xff");
        assert!(unescape(r"\256").is_err());
        assert!(unescape(r"\05x").is_err());
        assert!(unescape("x\\").is_err());
    }
}
