//! The XML documents S3 answers with (a tiny writer), and the request bodies it reads
//! (`roxmltree`: no DTDs, a node limit, any namespace).

use axum::body::Body;
use roxmltree::{Document, Node, ParsingOptions};

use super::error::{escape_into, S3Error};

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Whether `text` holds a character XML text must escape (rare: keys, names).
fn needs_escaping(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
}

/// A tiny XML writer: elements with escaped text.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    pub fn new(root: &str) -> Self {
        Self::with_capacity(root, 1024)
    }

    /// A document expected to grow to about `bytes` (a listing), written without regrowing.
    pub fn with_capacity(root: &str, bytes: usize) -> Self {
        let mut text = String::with_capacity(bytes);
        text.push_str(&format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NAMESPACE}\">"));
        Self(text)
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn field(&mut self, name: &str, text: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write;
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        let start = self.0.len();
        let _ = write!(self.0, "{text}");
        if needs_escaping(&self.0[start..]) {
            let raw = self.0.split_off(start);
            escape_into(&mut self.0, &raw);
        }
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    /// `field` for text already at hand: escaped only if it holds a special character.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        if needs_escaping(text) {
            escape_into(&mut self.0, text);
        } else {
            self.0.push_str(text);
        }
        self.close(name)
    }

    /// A quoted ETag, as S3 writes it in XML (`&quot;<hex>&quot;`).
    pub fn etag(&mut self, etag: &str) -> &mut Self {
        self.0.push_str("<ETag>&quot;");
        escape_into(&mut self.0, etag);
        self.0.push_str("&quot;</ETag>");
        self
    }

    /// A timestamp (`LastModified`) in ISO 8601.
    pub fn time(&mut self, name: &str, ms: i64) -> &mut Self {
        self.open(name);
        photon_runtime::time::iso8601_into(&mut self.0, ms);
        self.close(name)
    }

    /// A number, written without the formatting machinery (listings write thousands).
    pub fn number(&mut self, name: &str, mut n: u64) -> &mut Self {
        self.open(name);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        self.close(name)
    }

    /// Appends an already written fragment.
    pub fn raw(&mut self, fragment: &str) -> &mut Self {
        self.0.push_str(fragment);
        self
    }

    /// The text written so far (a fragment, for a writer made with `default`).
    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn finish(mut self, root: &str) -> String {
        self.0.push_str(&format!("</{root}>"));
        self.0
    }
}

/// The largest XML request body read (S3's DeleteObjects of 1000 keys fits).
pub const MAX_BODY: usize = 2 << 20;

/// A request body as text, at most `MAX_BODY` bytes.
pub async fn body_text(body: Body, what: &str) -> Result<String, S3Error> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| S3Error::malformed_xml(format!("the {what} body is over {MAX_BODY} bytes or was cut short")))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| S3Error::malformed_xml(format!("the {what} body is not UTF-8")))
}

/// `text` parsed, its root element named `root` (in any namespace).
pub fn parse<'a>(text: &'a str, root: &str) -> Result<Document<'a>, S3Error> {
    let options = ParsingOptions { allow_dtd: false, nodes_limit: 100_000, ..Default::default() };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| S3Error::malformed_xml(format!("the body is not well-formed XML: {e}")))?;
    let name = doc.root_element().tag_name().name();
    if name != root {
        return Err(S3Error::malformed_xml(format!("the body's root element is <{name}>, not <{root}>")));
    }
    Ok(doc)
}

/// The child elements of `node` named `name`.
pub fn children<'a, 'input>(node: Node<'a, 'input>, name: &'a str) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The text of `node`'s first child element named `name` (trimmed), if it has one.
pub fn text(node: Node, name: &str) -> Option<String> {
    children(node, name).next().map(|c| c.text().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_parse_with_any_namespace_and_refuse_the_rest() {
        let doc = super::parse(
            r#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object></Delete>"#,
            "Delete",
        )
        .unwrap();
        let object = super::children(doc.root_element(), "Object").next().unwrap();
        assert_eq!(super::text(object, "Key").as_deref(), Some("a&b"));
        for bad in ["", "<Delete>", "<Other/>", "<!DOCTYPE x [<!ENTITY a 'b'>]><Delete>&a;</Delete>"] {
            assert_eq!(super::parse(bad, "Delete").unwrap_err().code, "MalformedXML", "{bad}");
        }
    }

    #[test]
    fn documents_escape_their_text() {
        let mut xml = super::Xml::new("ListBucketResult");
        xml.field("Name", "a&b").open("Contents").field("Key", "<k>").close("Contents");
        let doc = xml.finish("ListBucketResult");
        assert!(
            doc.ends_with("<Name>a&amp;b</Name><Contents><Key>&lt;k&gt;</Key></Contents></ListBucketResult>"),
            "{doc}"
        );
    }
}
