//! TSIG (RFC 8945) on hickory-proto's primitives: the keys of `[transfer] keys`, the check of a
//! request's signature (§5.2), and the signing of the responses to it (§5.3): the first with the
//! request's MAC, each later message of a transfer with the previous message's (§5.3.1).

use std::collections::HashMap;

use base64::Engine as _;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigAlgorithm, TsigError, TSIG};
use hickory_proto::rr::{Name, TSigner};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_proto::ProtoError;

/// The time difference we allow and ask for (RFC 8945 §10 recommends 300 seconds).
pub const FUDGE: u16 = 300;

/// The algorithms a key may name; hickory-proto computes these three.
const ALGORITHMS: &[(&str, TsigAlgorithm)] = &[
    ("hmac-sha256", TsigAlgorithm::HmacSha256),
    ("hmac-sha384", TsigAlgorithm::HmacSha384),
    ("hmac-sha512", TsigAlgorithm::HmacSha512),
];

#[derive(Debug, thiserror::Error)]
#[error("transfer.keys[{index}]: {message}")]
pub struct KeyError {
    pub index: usize,
    pub message: String,
}

/// The TSIG keys this server knows, by name (lowercase, absolute).
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: HashMap<Name, TSigner>,
}

impl KeyRing {
    /// Reads `<name>:<algorithm>:<base64 secret>` entries. Errors name the entry, never the
    /// secret.
    pub fn parse(entries: &[String]) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let fail = |message: String| KeyError { index, message };
            let mut parts = entry.trim().rsplitn(3, ':');
            let (Some(secret), Some(algorithm), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(fail("not <name>:<algorithm>:<base64 secret>".into()));
            };
            let name = key_name(name).map_err(fail)?;
            let Some((_, algorithm)) = ALGORITHMS.iter().find(|(text, _)| text.eq_ignore_ascii_case(algorithm)) else {
                let known: Vec<&str> = ALGORITHMS.iter().map(|(text, _)| *text).collect();
                return Err(fail(format!("algorithm {algorithm:?} is not one of {}", known.join(", "))));
            };
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .map_err(|e| fail(format!("the secret is not base64: {e}")))?;
            if secret.is_empty() {
                return Err(fail("the secret is empty".into()));
            }
            let signer = TSigner::new(secret, algorithm.clone(), name.clone(), FUDGE)
                .map_err(|e| fail(format!("cannot use the key: {e}")))?;
            if keys.insert(name.clone(), signer).is_some() {
                return Err(fail(format!("key {name} is given twice")));
            }
        }
        Ok(Self { keys })
    }

    pub fn get(&self, name: &Name) -> Option<&TSigner> {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        self.keys.get(&name)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the TSIG of `request` (decoded from `query`) at `now` (seconds since the epoch).
    pub fn check(&self, query: &[u8], request: &Message, now: u64) -> Check {
        let Some(tsig) = request.signature.as_deref() else {
            return Check::Unsigned;
        };
        let failure = |error, signer: Option<&TSigner>, request_mac: Vec<u8>| {
            Check::Failed(Failure {
                error,
                key_name: tsig.name.clone(),
                algorithm: tsig.data.algorithm.clone(),
                id: request.metadata.id,
                client_time: tsig.data.time,
                signer: signer.cloned(),
                request_mac,
            })
        };
        // §5.2.1: an unknown key, or a known name with another algorithm, is BADKEY.
        let signer = match self.get(&tsig.name) {
            Some(signer) if *signer.algorithm() == tsig.data.algorithm => signer,
            _ => return failure(TsigError::BadKey, None, Vec::new()),
        };
        // §5.2.2: a MAC that does not verify (truncated MACs are refused too) is BADSIG.
        let Ok((request_mac, _, valid)) = signer.verify_message_byte(query, None, true) else {
            return failure(TsigError::BadSig, None, Vec::new());
        };
        // §5.2.3: outside the fudge window is BADTIME, answered signed.
        if !valid.contains(&now) {
            return failure(TsigError::BadTime, Some(signer), request_mac);
        }
        Check::Signed(Signing {
            signer: signer.clone(),
            id: request.metadata.id,
            previous_mac: request_mac,
            first: true,
        })
    }
}

/// A key's name as TSIG compares it: lowercase and absolute.
pub fn key_name(text: &str) -> Result<Name, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the key name is empty".into());
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("{text:?} is not a key name: {e}"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// What a request's TSIG says.
pub enum Check {
    Unsigned,
    /// It verified: responses are signed with this.
    Signed(Signing),
    /// It did not: the response is an error (`Failure::respond`).
    Failed(Failure),
}

/// Signs the responses to one verified request, in order.
pub struct Signing {
    signer: TSigner,
    id: u16,
    /// The request's MAC before the first response, then the last response's.
    previous_mac: Vec<u8>,
    first: bool,
}

impl Signing {
    /// The name of the key the request was signed with.
    pub fn key_name(&self) -> &Name {
        self.signer.signer_name()
    }

    /// Signs `message`, the next response, at `now`. The first response's MAC covers the
    /// request's MAC, the message and all TSIG variables (§4.3.1); a later one's covers the
    /// previous MAC, the message and only the timers (§5.3.1).
    pub fn sign(&mut self, message: &mut Message, now: u64) -> Result<(), ProtoError> {
        message.signature = None;
        let unsigned = message.to_vec()?;
        let stub = TSIG::new(self.signer.algorithm().clone(), now, FUDGE, Vec::new(), self.id, None, Vec::new());
        let tbs = if self.first {
            self.signer.encode_response_tbs(&self.previous_mac, &unsigned, &stub)?
        } else {
            let mut tbs = Vec::with_capacity(unsigned.len() + self.previous_mac.len() + 10);
            let mut encoder = BinEncoder::new(&mut tbs);
            encoder.emit_u16(self.previous_mac.len() as u16)?;
            encoder.emit_vec(&self.previous_mac)?;
            encoder.emit_vec(&unsigned)?;
            encoder.emit_u16((now >> 32) as u16)?;
            encoder.emit_u32(now as u32)?;
            encoder.emit_u16(FUDGE)?;
            tbs
        };
        let mac = self.signer.sign(&tbs).map_err(|e| ProtoError::from(e.to_string()))?;
        message.signature =
            Some(Box::new(make_tsig_record(self.signer.signer_name().clone(), stub.set_mac(mac.clone()))));
        self.previous_mac = mac;
        self.first = false;
        Ok(())
    }
}

/// Why a request's TSIG was refused, and what goes into the error response.
pub struct Failure {
    pub error: TsigError,
    key_name: Name,
    algorithm: TsigAlgorithm,
    id: u16,
    client_time: u64,
    /// Set for BADTIME, which is signed.
    signer: Option<TSigner>,
    request_mac: Vec<u8>,
}

impl Failure {
    /// A metrics label.
    pub fn reason(&self) -> &'static str {
        match self.error {
            TsigError::BadKey => "bad_key",
            TsigError::BadSig => "bad_sig",
            TsigError::BadTime => "bad_time",
            _ => "bad_tsig",
        }
    }

    /// Makes `response` the error answer: NOTAUTH and a TSIG carrying the error, unsigned for
    /// BADKEY and BADSIG (§5.2.1, §5.2.2); for BADTIME signed, with the client's time as Time
    /// Signed and ours as Other Data (§5.2.3).
    pub fn respond(&self, response: &mut Message, now: u64) -> Result<(), ProtoError> {
        response.answers.clear();
        response.authorities.clear();
        response.additionals.clear();
        response.metadata.response_code = ResponseCode::NotAuth;
        response.metadata.authoritative = false;
        response.signature = None;
        match &self.signer {
            Some(signer) => {
                let other = (now & 0xffff_ffff_ffff).to_be_bytes()[2..].to_vec();
                let stub = TSIG::new(
                    self.algorithm.clone(),
                    self.client_time,
                    FUDGE,
                    Vec::new(),
                    self.id,
                    Some(self.error),
                    other,
                );
                let unsigned = response.to_vec()?;
                let tbs = signer.encode_response_tbs(&self.request_mac, &unsigned, &stub)?;
                let mac = signer.sign(&tbs).map_err(|e| ProtoError::from(e.to_string()))?;
                response.signature = Some(Box::new(make_tsig_record(signer.signer_name().clone(), stub.set_mac(mac))));
            }
            None => {
                let stub =
                    TSIG::new(self.algorithm.clone(), now, FUDGE, Vec::new(), self.id, Some(self.error), Vec::new());
                response.signature = Some(Box::new(make_tsig_record(self.key_name.clone(), stub)));
            }
        }
        Ok(())
    }
}

/// Seconds since the epoch, as TSIG counts time.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};

    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
    const NOW: u64 = 1_700_000_000;

    fn ring() -> KeyRing {
        KeyRing::parse(&[format!("Xfr.Key:hmac-sha256:{SECRET}")]).expect("a valid key")
    }

    fn client(secret: &str, name: &str) -> TSigner {
        let key = base64::engine::general_purpose::STANDARD.decode(secret).expect("base64");
        TSigner::new(key, TsigAlgorithm::HmacSha256, Name::from_ascii(name).expect("a name"), FUDGE).expect("a signer")
    }

    fn axfr_request() -> Message {
        let mut request = Message::query();
        request.add_query(Query::query(Name::from_ascii("example.test.").expect("a name"), RecordType::AXFR));
        request
    }

    fn response(request: &Message, n: u8) -> Message {
        let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        response.queries = request.queries.clone();
        let name = Name::from_ascii("www.example.test.").expect("a name");
        response.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, n))));
        response
    }

    #[test]
    fn keys_parse_and_refuse_bad_entries() {
        let ring = ring();
        assert_eq!(ring.len(), 1);
        assert!(
            ring.get(&Name::from_ascii("xfr.key").expect("a name")).is_some(),
            "lookup ignores case and the final dot"
        );
        for bad in
            ["nocolons", "k:hmac-md5:c2VjcmV0", "k:hmac-sha256:not base64!", "k:hmac-sha256:", ":hmac-sha256:c2VjcmV0"]
        {
            let error = KeyRing::parse(&[bad.to_string()]).err().expect("refused");
            assert_eq!(error.index, 0);
            assert!(!error.to_string().contains("c2VjcmV0"), "the secret is never in the message: {error}");
        }
        let twice = KeyRing::parse(&[format!("a:hmac-sha256:{SECRET}"), format!("A.:hmac-sha256:{SECRET}")]);
        assert_eq!(twice.err().map(|e| e.index), Some(1));
    }

    #[test]
    fn a_sequence_of_signed_responses_verifies_as_a_client_checks_it() {
        let mut request = axfr_request();
        let mut verifier = request.finalize(&client(SECRET, "xfr.key."), NOW).expect("signs").expect("a verifier");
        let query = request.to_vec().expect("encodes");
        let decoded = Message::from_vec(&query).expect("decodes");
        let Check::Signed(mut signing) = ring().check(&query, &decoded, NOW + 10) else {
            panic!("the request verifies")
        };
        for n in 1..=3 {
            let mut message = response(&decoded, n);
            signing.sign(&mut message, NOW + 10).expect("signs");
            let bytes = message.to_vec().expect("encodes");
            verifier.verify(&bytes).unwrap_or_else(|e| panic!("message {n} verifies: {e}"));
        }
    }

    #[test]
    fn a_wrong_secret_an_unknown_key_and_a_stale_time_are_refused() {
        let cases = [
            (client("d3Jvbmctc2VjcmV0", "xfr.key."), NOW, TsigError::BadSig),
            (client(SECRET, "other.key."), NOW, TsigError::BadKey),
            (client(SECRET, "xfr.key."), NOW - 1000, TsigError::BadTime),
        ];
        for (signer, time, want) in cases {
            let mut request = axfr_request();
            request.finalize(&signer, time).expect("signs");
            let query = request.to_vec().expect("encodes");
            let decoded = Message::from_vec(&query).expect("decodes");
            let Check::Failed(failure) = ring().check(&query, &decoded, NOW) else { panic!("{want:?} is refused") };
            assert_eq!(failure.error, want);
            let mut answer = response(&decoded, 1);
            failure.respond(&mut answer, NOW).expect("an error response");
            assert_eq!(answer.metadata.response_code, ResponseCode::NotAuth);
            assert!(answer.answers.is_empty());
            let tsig = answer.signature.as_deref().expect("a TSIG in the error");
            assert_eq!(tsig.data.error, Some(want));
            assert_eq!(tsig.data.mac.is_empty(), want != TsigError::BadTime, "only BADTIME is signed");
        }
    }

    #[test]
    fn an_unsigned_request_is_unsigned() {
        let request = axfr_request();
        let query = request.to_vec().expect("encodes");
        assert!(matches!(ring().check(&query, &request, NOW), Check::Unsigned));
    }
}
