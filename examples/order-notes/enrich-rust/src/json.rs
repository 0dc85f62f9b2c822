//! Just enough JSON for the enrich stage, with the standard library alone:
//! the SDK has no JSON and a stage crate takes no dependencies.
//!
//! It checks documents against RFC 8259 as strictly as Go's encoding/json
//! does (and the Go SDK's rawjson, which the Go twin of the stage uses), so
//! that both variants accept and refuse the same orders, with two
//! exceptions: a document must be UTF-8 here, where Go lets invalid bytes
//! through, and nesting has no limit here, where Go stops at 10000 levels.
//! A lone surrogate escape (`"\ud800"`) decodes to U+FFFD, as in Go.
//!
//! Values are handed out as slices of the input, as written: nothing is
//! copied or re-encoded except a string that [`string`] must unescape.

use std::borrow::Cow;
use std::fmt;

/// Where and why a document is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The byte offset in the document of the first wrong byte, or its
    /// length when the document ends too early.
    pub offset: usize,
    what: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

/// Why [`object`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// It is not JSON.
    Syntax(SyntaxError),
    /// It is JSON but not an object; the text names what it is ("an
    /// array", "null", ...).
    NotObject(&'static str),
}

/// A member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The name, unescaped.
    pub name: Cow<'a, str>,
    /// The name as written: a string token, quotes included.
    pub raw_name: &'a str,
    /// The value as written: valid JSON, whitespace inside it included.
    pub value: &'a str,
}

/// Checks that `doc` is one JSON value, with nothing but whitespace around
/// it, and returns the value as written, without that whitespace.
pub fn parse(doc: &[u8]) -> Result<&str, SyntaxError> {
    let mut p = Parser::new(doc)?;
    p.ws();
    let start = p.pos;
    p.value()?;
    let end = p.pos;
    p.end()?;
    Ok(&p.s[start..end])
}

/// Checks that `doc` is a JSON object, with nothing but whitespace around
/// it, and returns its members in the order written. A name given twice
/// gives two members: decoders that keep one (Go's among them) keep the
/// last.
pub fn object(doc: &[u8]) -> Result<Vec<Member<'_>>, ObjectError> {
    let mut p = Parser::new(doc).map_err(ObjectError::Syntax)?;
    p.ws();
    if p.peek() != Some(b'{') {
        let start = p.pos;
        p.value().map_err(ObjectError::Syntax)?;
        p.end().map_err(ObjectError::Syntax)?;
        return Err(ObjectError::NotObject(kind(&p.s[start..])));
    }
    p.members().map_err(ObjectError::Syntax)
}

/// Returns the text of a string token that [`parse`] or [`object`] handed
/// out (a member's `raw_name`, or a `value` that starts with `"`), with its
/// escapes undone. It borrows the token when there are none.
pub fn string(token: &str) -> Cow<'_, str> {
    let inner = &token[1..token.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = rest.as_bytes()[i + 1];
        rest = &rest[i + 2..];
        let c = match esc {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(rest);
                rest = &rest[4..];
                match hi {
                    0xD800..=0xDBFF => match low_surrogate(rest) {
                        Some(lo) => {
                            rest = &rest[6..];
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
                        }
                        None => char::REPLACEMENT_CHARACTER,
                    },
                    _ => char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER),
                }
            }
            // '"', '\\' and '/' stand for themselves.
            other => other as char,
        };
        out.push(c);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends `value`, which [`parse`] or [`object`] handed out, to `out`
/// without the whitespace between its tokens.
pub fn compact_into(out: &mut String, value: &str) {
    let b = value.as_bytes();
    let mut from = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b' ' | b'\t' | b'\n' | b'\r' if !in_string => {
                out.push_str(&value[from..i]);
                from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&value[from..]);
}

/// What a JSON value is, named by its first byte.
fn kind(value: &str) -> &'static str {
    match value.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The value of four hex digits that the parser has checked.
fn hex4(s: &str) -> u32 {
    u32::from_str_radix(&s[..4], 16).unwrap_or(0xFFFD)
}

/// The low surrogate that `s` starts with as a `\uXXXX` escape, if it does.
fn low_surrogate(s: &str) -> Option<u32> {
    if !s.starts_with("\\u") {
        return None;
    }
    let lo = hex4(&s[2..]);
    if (0xDC00..=0xDFFF).contains(&lo) {
        Some(lo)
    } else {
        None
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(doc: &'a [u8]) -> Result<Parser<'a>, SyntaxError> {
        match std::str::from_utf8(doc) {
            Ok(s) => Ok(Parser { s, b: doc, pos: 0 }),
            Err(e) => Err(SyntaxError {
                offset: e.valid_up_to(),
                what: "invalid UTF-8".to_string(),
            }),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// An error at the current byte: "invalid character 'x' <context>", or
    /// "unexpected end of input <context>" past the end.
    fn err(&self, context: &str) -> SyntaxError {
        let what = match self.s[self.pos..].chars().next() {
            Some(c) => format!("invalid character {:?} {}", c, context),
            None => format!("unexpected end of input {}", context),
        };
        SyntaxError {
            offset: self.pos,
            what,
        }
    }

    fn expect(&mut self, c: u8, context: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(context))
        }
    }

    /// Checks that nothing but whitespace is left.
    fn end(&mut self) -> Result<(), SyntaxError> {
        self.ws();
        if self.pos < self.b.len() {
            return Err(self.err("after the top-level value"));
        }
        Ok(())
    }

    /// Skips one value. Nesting is tracked on a heap stack rather than by
    /// recursion, so that a deeply nested document is refused or accepted
    /// rather than exhausting the Wasm stack (a trap).
    fn value(&mut self) -> Result<(), SyntaxError> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    self.pos += 1;
                    self.ws();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        open.push(c);
                        if c == b'{' {
                            self.name()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.err("looking for the beginning of a value")),
            }
            // A value ended: close what it ends, or go on to the next
            // element or member.
            loop {
                let c = match open.last() {
                    None => return Ok(()),
                    Some(&c) => c,
                };
                self.ws();
                match (c, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if c == b'{' {
                            self.ws();
                            self.name()?;
                        }
                        break;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        open.pop();
                    }
                    (b'{', _) => return Err(self.err("after an object member")),
                    _ => return Err(self.err("after an array element")),
                }
            }
        }
    }

    /// Reads the members of the object at the current byte, and checks
    /// that nothing but whitespace follows it.
    fn members(&mut self) -> Result<Vec<Member<'a>>, SyntaxError> {
        let mut members = Vec::new();
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let raw_name = self.name()?;
                self.ws();
                let start = self.pos;
                self.value()?;
                members.push(Member {
                    name: string(raw_name),
                    raw_name,
                    value: &self.s[start..self.pos],
                });
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.err("after an object member")),
                }
            }
        }
        self.end()?;
        Ok(members)
    }

    /// Reads a member's name and its colon, and returns the name's token.
    fn name(&mut self) -> Result<&'a str, SyntaxError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("looking for the beginning of an object member's name"));
        }
        let start = self.pos;
        self.string()?;
        let token = &self.s[start..self.pos];
        self.ws();
        self.expect(b':', "after an object member's name")?;
        Ok(token)
    }

    fn string(&mut self) -> Result<(), SyntaxError> {
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.err("in a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    Some(c) if c.is_ascii_hexdigit() => self.pos += 1,
                                    _ => return Err(self.err("in a \\u escape")),
                                }
                            }
                        }
                        _ => return Err(self.err("in a string escape")),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.err("in a string (control characters must be escaped)")),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), SyntaxError> {
        for &want in word.as_bytes() {
            if self.peek() != Some(want) {
                return Err(self.err(&format!("in literal {}", word)));
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("in a number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits("after the decimal point")?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits("in an exponent")?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self, context: &str) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            _ => Err(self.err(context)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_json_and_trims_it() {
        for (doc, want) in [
            ("0", "0"),
            (" -0.5e+10 ", "-0.5e+10"),
            ("1E-2", "1E-2"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
            ("\t\r\ntrue\n", "true"),
            ("false", "false"),
            ("null", "null"),
            (r#""""#, r#""""#),
            (r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#, r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#),
            ("\"é €\"", "\"é €\""),
            ("{}", "{}"),
            ("[]", "[]"),
            ("[ ]", "[ ]"),
            ("{ }", "{ }"),
            (r#" { "a" : [ 1 , { } , [ [ ] ] , "x" ] , "b" : { "c" : null } } "#,
             r#"{ "a" : [ 1 , { } , [ [ ] ] , "x" ] , "b" : { "c" : null } }"#),
        ] {
            assert_eq!(parse(doc.as_bytes()), Ok(want), "{:?}", doc);
        }
    }

    #[test]
    fn parse_refuses_what_is_not_json() {
        for (doc, want) in [
            ("", "unexpected end of input looking for the beginning of a value at byte 0"),
            ("   ", "unexpected end of input looking for the beginning of a value at byte 3"),
            ("not json", "invalid character 'o' in literal null at byte 1"),
            ("nul", "unexpected end of input in literal null at byte 3"),
            ("True", "invalid character 'T' looking for the beginning of a value at byte 0"),
            ("1 2", "invalid character '2' after the top-level value at byte 2"),
            ("{} {}", "invalid character '{' after the top-level value at byte 3"),
            ("01", "invalid character '1' after the top-level value at byte 1"),
            ("+1", "invalid character '+' looking for the beginning of a value at byte 0"),
            (".5", "invalid character '.' looking for the beginning of a value at byte 0"),
            ("-", "unexpected end of input in a number at byte 1"),
            ("-a", "invalid character 'a' in a number at byte 1"),
            ("1.", "unexpected end of input after the decimal point at byte 2"),
            ("1.e5", "invalid character 'e' after the decimal point at byte 2"),
            ("1e", "unexpected end of input in an exponent at byte 2"),
            ("1e+", "unexpected end of input in an exponent at byte 3"),
            ("NaN", "invalid character 'N' looking for the beginning of a value at byte 0"),
            ("\"abc", "unexpected end of input in a string at byte 4"),
            ("\"a\nb\"", "invalid character '\\n' in a string (control characters must be escaped) at byte 2"),
            (r#""\x""#, "invalid character 'x' in a string escape at byte 2"),
            (r#""\u12""#, "invalid character '\"' in a \\u escape at byte 5"),
            (r#""\u12g4""#, "invalid character 'g' in a \\u escape at byte 5"),
            ("'a'", "invalid character '\\'' looking for the beginning of a value at byte 0"),
            ("[", "unexpected end of input looking for the beginning of a value at byte 1"),
            ("[1", "unexpected end of input after an array element at byte 2"),
            ("[1,]", "invalid character ']' looking for the beginning of a value at byte 3"),
            ("[1 2]", "invalid character '2' after an array element at byte 3"),
            ("[1}", "invalid character '}' after an array element at byte 2"),
            ("{", "unexpected end of input looking for the beginning of an object member's name at byte 1"),
            ("{a:1}", "invalid character 'a' looking for the beginning of an object member's name at byte 1"),
            (r#"{"a"}"#, "invalid character '}' after an object member's name at byte 4"),
            (r#"{"a" 1}"#, "invalid character '1' after an object member's name at byte 5"),
            (r#"{"a":}"#, "invalid character '}' looking for the beginning of a value at byte 5"),
            (r#"{"a":1,}"#, "invalid character '}' looking for the beginning of an object member's name at byte 7"),
            (r#"{"a":1]"#, "invalid character ']' after an object member at byte 6"),
            (r#"{"a":1 "b":2}"#, "invalid character '\"' after an object member at byte 7"),
            (r#"[{"a":[1,{"b":2]}]"#, "invalid character ']' after an object member at byte 15"),
        ] {
            match parse(doc.as_bytes()) {
                Ok(v) => panic!("{:?} parsed as {:?}", doc, v),
                Err(e) => assert_eq!(e.to_string(), want, "{:?}", doc),
            }
        }
    }

    #[test]
    fn invalid_utf8_is_not_json() {
        let e = parse(b"\"ab\xff\"").unwrap_err();
        assert_eq!(e.to_string(), "invalid UTF-8 at byte 3");
        match object(b"{\"a\xc3\":1}") {
            Err(ObjectError::Syntax(e)) => assert_eq!(e.to_string(), "invalid UTF-8 at byte 3"),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let deep = "[".repeat(1_000_000) + &"]".repeat(1_000_000);
        assert_eq!(parse(deep.as_bytes()).map(str::len), Ok(2_000_000));
        let unclosed = "[{\"a\":".repeat(500_000);
        let e = parse(unclosed.as_bytes()).unwrap_err();
        assert_eq!(e.offset, unclosed.len());
    }

    #[test]
    fn object_returns_members_as_written() {
        let doc = br#" { "id" : "o1", "pro\u0064uct_id":"p\"1", "n" : [1, 2] , "id":2 } "#;
        let members = object(doc).unwrap();
        let got: Vec<(&str, &str, &str)> = members
            .iter()
            .map(|m| (m.name.as_ref(), m.raw_name, m.value))
            .collect();
        assert_eq!(
            got,
            [
                ("id", r#""id""#, r#""o1""#),
                ("product_id", r#""pro\u0064uct_id""#, r#""p\"1""#),
                ("n", r#""n""#, "[1, 2]"),
                ("id", r#""id""#, "2"),
            ]
        );
        assert_eq!(object(b"{}"), Ok(vec![]));
        assert_eq!(object(b"\n{ }\n"), Ok(vec![]));
    }

    #[test]
    fn object_refuses_other_values_and_syntax_errors() {
        for (doc, want) in [
            ("[1]", "an array"),
            ("\"{}\"", "a string"),
            ("-1", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            assert_eq!(object(doc.as_bytes()), Err(ObjectError::NotObject(want)), "{:?}", doc);
        }
        for (doc, want) in [
            ("[1", "unexpected end of input after an array element at byte 2"),
            (r#"{"a":1"#, "unexpected end of input after an object member at byte 6"),
            (r#"{"a":1} x"#, "invalid character 'x' after the top-level value at byte 8"),
            (r#"{"a":[}"#, "invalid character '}' looking for the beginning of a value at byte 6"),
        ] {
            match object(doc.as_bytes()) {
                Err(ObjectError::Syntax(e)) => assert_eq!(e.to_string(), want, "{:?}", doc),
                other => panic!("{:?}: {:?}", doc, other),
            }
        }
    }

    #[test]
    fn string_undoes_escapes() {
        for (token, want) in [
            (r#""""#, ""),
            (r#""plain é""#, "plain é"),
            (r#""a\"b\\c\/d""#, "a\"b\\c/d"),
            (r#""\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#""\u0041\u00e9\u20AC""#, "Aé€"),
            (r#""\ud83d\ude00!""#, "😀!"),
            // Lone surrogates become U+FFFD, as Go decodes them.
            (r#""\ud83d""#, "\u{FFFD}"),
            (r#""\ud83dx""#, "\u{FFFD}x"),
            (r#""\ud83d\u0041""#, "\u{FFFD}A"),
            (r#""\ude00\ud83d""#, "\u{FFFD}\u{FFFD}"),
            (r#""\ud83d\ud83d\ude00""#, "\u{FFFD}😀"),
        ] {
            assert_eq!(parse(token.as_bytes()), Ok(token), "{:?}", token);
            assert_eq!(string(token), want, "{:?}", token);
        }
        assert!(matches!(string(r#""no escapes""#), Cow::Borrowed(_)));
    }

    #[test]
    fn compact_drops_whitespace_outside_strings() {
        let mut out = String::from("<");
        compact_into(
            &mut out,
            "{ \"a b\" :\t[ 1 ,\r\n \"x \\\" y\\\\\" , { } ] , \"c\" : \" \" }",
        );
        assert_eq!(out, r#"<{"a b":[1,"x \" y\\",{}],"c":" "}"#);
        let mut out = String::new();
        compact_into(&mut out, "12");
        assert_eq!(out, "12");
    }
}
