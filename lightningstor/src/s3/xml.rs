//! The XML documents S3 answers with (only what the handlers send).

use super::error::xml_escape;

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A tiny XML writer: elements with escaped text.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    pub fn new(root: &str) -> Self {
        Self(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NAMESPACE}\">"))
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("<{name}>"));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("</{name}>"));
        self
    }

    pub fn field(&mut self, name: &str, text: impl std::fmt::Display) -> &mut Self {
        self.0.push_str(&format!("<{name}>{}</{name}>", xml_escape(&text.to_string())));
        self
    }

    pub fn finish(mut self, root: &str) -> String {
        self.0.push_str(&format!("</{root}>"));
        self.0
    }
}

#[cfg(test)]
mod tests {
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
