//! S3 errors as clients expect them: an XML `<Error>` document with S3's code, a message, the
//! resource and the request id, and S3's HTTP status for that code.

/// One S3 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct S3Error {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
    /// Headers the error answers with (`x-amz-delete-marker` on a deleted key).
    pub headers: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

macro_rules! codes {
    ($($name:ident => ($code:literal, $status:literal)),* $(,)?) => {
        impl S3Error {
            $(
                pub fn $name(message: impl Into<String>) -> Self {
                    Self { code: $code, message: message.into(), status: $status, headers: Vec::new() }
                }
            )*
        }
    };
}

codes! {
    access_denied => ("AccessDenied", 403),
    bad_digest => ("BadDigest", 400),
    bucket_already_exists => ("BucketAlreadyExists", 409),
    bucket_already_owned_by_you => ("BucketAlreadyOwnedByYou", 409),
    bucket_not_empty => ("BucketNotEmpty", 409),
    entity_too_large => ("EntityTooLarge", 400),
    entity_too_small => ("EntityTooSmall", 400),
    incomplete_body => ("IncompleteBody", 400),
    internal_error => ("InternalError", 500),
    invalid_access_key_id => ("InvalidAccessKeyId", 403),
    invalid_argument => ("InvalidArgument", 400),
    invalid_bucket_name => ("InvalidBucketName", 400),
    invalid_digest => ("InvalidDigest", 400),
    invalid_part => ("InvalidPart", 400),
    invalid_part_order => ("InvalidPartOrder", 400),
    invalid_range => ("InvalidRange", 416),
    invalid_request => ("InvalidRequest", 400),
    key_too_long => ("KeyTooLongError", 400),
    malformed_policy => ("MalformedPolicy", 400),
    malformed_xml => ("MalformedXML", 400),
    metadata_too_large => ("MetadataTooLarge", 400),
    method_not_allowed => ("MethodNotAllowed", 405),
    missing_content_length => ("MissingContentLength", 411),
    no_such_bucket => ("NoSuchBucket", 404),
    no_such_key => ("NoSuchKey", 404),
    no_such_bucket_policy => ("NoSuchBucketPolicy", 404),
    no_such_upload => ("NoSuchUpload", 404),
    no_such_version => ("NoSuchVersion", 404),
    not_implemented => ("NotImplemented", 501),
    precondition_failed => ("PreconditionFailed", 412),
    request_header_section_too_large => ("RequestHeaderSectionTooLarge", 400),
    request_time_too_skewed => ("RequestTimeTooSkewed", 403),
    service_unavailable => ("ServiceUnavailable", 503),
    signature_does_not_match => ("SignatureDoesNotMatch", 403),
    authorization_header_malformed => ("AuthorizationHeaderMalformed", 400),
    x_amz_content_sha256_mismatch => ("XAmzContentSHA256Mismatch", 400),
}

impl From<photon_auth::sigv4::SigV4Error> for S3Error {
    fn from(e: photon_auth::sigv4::SigV4Error) -> Self {
        use photon_auth::sigv4::SigV4Error as E;
        let message = e.to_string();
        match e {
            E::Malformed(_) => Self::authorization_header_malformed(message),
            E::InvalidAccessKeyId(_) => Self::invalid_access_key_id(message),
            E::SignatureDoesNotMatch => Self::signature_does_not_match(message),
            E::RequestTimeTooSkewed => Self::request_time_too_skewed(message),
            E::Expired => Self::access_denied("Request has expired"),
            E::Unavailable(_) => Self::service_unavailable(message),
        }
    }
}

/// `text` with XML's special characters escaped.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Appends `text` to `out` with XML's special characters escaped.
pub fn escape_into(out: &mut String, text: &str) {
    if !text.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

impl S3Error {
    /// The XML document S3 answers with.
    pub fn document(&self, resource: &str, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code,
            xml_escape(&self.message),
            xml_escape(resource),
            xml_escape(request_id)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_as_s3_documents() {
        let e = S3Error::no_such_key("The specified key does not exist.");
        assert_eq!((e.code, e.status), ("NoSuchKey", 404));
        let doc = e.document("/b/a<b>&c", "req-1");
        assert!(
            doc.contains("<Code>NoSuchKey</Code>") && doc.contains("<Resource>/b/a&lt;b&gt;&amp;c</Resource>"),
            "{doc}"
        );
        let signature: S3Error = photon_auth::sigv4::SigV4Error::SignatureDoesNotMatch.into();
        assert_eq!((signature.code, signature.status), ("SignatureDoesNotMatch", 403));
    }
}
