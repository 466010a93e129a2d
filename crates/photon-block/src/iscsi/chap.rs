//! CHAP authentication of the initiator (RFC 1994, RFC 7143 §12.1.3): the target offers
//! algorithm 5 (MD5), sends an identifier and a fresh random challenge, and checks
//! `MD5(identifier || secret || challenge)` against the initiator's response. Each challenge
//! answers exactly one response; any CHAP key after that fails the login. Mutual CHAP (the
//! initiator challenging the target) is refused: targets have no secret of their own here.

use md5::{Digest, Md5};

/// Challenge length in bytes (RFC 7143 asks for at least as long as the secret's entropy;
/// 16 random bytes is what common targets send).
pub const CHALLENGE_LEN: usize = 16;
const ALGORITHM_MD5: &str = "5";

/// Why a CHAP exchange failed; the login ends with "authentication failure".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChapError {
    #[error("the initiator offers no CHAP algorithm this target supports (MD5)")]
    NoAlgorithm,
    #[error("CHAP keys arrived out of order")]
    OutOfOrder,
    #[error("the CHAP user name does not match")]
    WrongUser,
    #[error("the CHAP response is malformed")]
    Malformed,
    #[error("the CHAP response does not match the challenge")]
    WrongResponse,
    #[error("the initiator asked for mutual CHAP, which this target does not offer")]
    Mutual,
    #[error("the initiator sent the target's own challenge back (a reflection attempt)")]
    Reflected,
    #[error("the challenge was already answered")]
    Reused,
}

enum State {
    AwaitAlgorithm,
    AwaitResponse { id: u8, challenge: [u8; CHALLENGE_LEN] },
    Done,
}

/// One login's CHAP exchange against the target's credentials.
pub struct Chap {
    user: String,
    secret: Vec<u8>,
    state: State,
}

impl Chap {
    pub fn new(user: &str, secret: &[u8]) -> Self {
        Self { user: user.to_string(), secret: secret.to_vec(), state: State::AwaitAlgorithm }
    }

    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Handles the CHAP keys among `keys`; returns the keys to answer with. `fresh` gives the
    /// identifier and challenge when one is needed.
    pub fn step(
        &mut self,
        keys: &[(String, String)],
        fresh: impl FnOnce() -> (u8, [u8; CHALLENGE_LEN]),
    ) -> Result<Vec<(String, String)>, ChapError> {
        let get = |name: &str| keys.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let any_chap = keys.iter().any(|(k, _)| k.starts_with("CHAP_"));
        match self.state {
            State::Done if any_chap => Err(ChapError::Reused),
            State::Done => Ok(Vec::new()),
            State::AwaitAlgorithm => {
                if get("CHAP_N").is_some() || get("CHAP_R").is_some() {
                    return Err(ChapError::OutOfOrder);
                }
                let Some(algorithms) = get("CHAP_A") else { return Ok(Vec::new()) };
                if !algorithms.split(',').any(|a| a.trim() == ALGORITHM_MD5) {
                    return Err(ChapError::NoAlgorithm);
                }
                let (id, challenge) = fresh();
                self.state = State::AwaitResponse { id, challenge };
                Ok(vec![
                    ("CHAP_A".into(), ALGORITHM_MD5.into()),
                    ("CHAP_I".into(), id.to_string()),
                    ("CHAP_C".into(), format!("0x{}", hex(&challenge))),
                ])
            }
            State::AwaitResponse { id, challenge } => {
                if let Some(theirs) = get("CHAP_C") {
                    if decode(theirs).is_some_and(|c| c == challenge) {
                        return Err(ChapError::Reflected);
                    }
                    return Err(ChapError::Mutual);
                }
                if get("CHAP_I").is_some() {
                    return Err(ChapError::Mutual);
                }
                let (Some(user), Some(response)) = (get("CHAP_N"), get("CHAP_R")) else {
                    return Err(ChapError::OutOfOrder);
                };
                // The challenge is spent whatever the outcome.
                self.state = State::Done;
                if !equal(user.as_bytes(), self.user.as_bytes()) {
                    return Err(ChapError::WrongUser);
                }
                let response = decode(response).ok_or(ChapError::Malformed)?;
                if !equal(&response, &expected(id, &self.secret, &challenge)) {
                    return Err(ChapError::WrongResponse);
                }
                Ok(Vec::new())
            }
        }
    }
}

/// `MD5(id || secret || challenge)`, the response an initiator knowing the secret sends.
pub fn expected(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update([id]);
    md5.update(secret);
    md5.update(challenge);
    md5.finalize().into()
}

/// A fresh identifier and challenge from the system CSPRNG.
pub fn fresh() -> Result<(u8, [u8; CHALLENGE_LEN]), ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; CHALLENGE_LEN + 1];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    let mut challenge = [0u8; CHALLENGE_LEN];
    challenge.copy_from_slice(&bytes[1..]);
    Ok((bytes[0], challenge))
}

/// Compares in time independent of where the inputs differ.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A binary value as iSCSI encodes it: `0x` hex or `0b` base64 (RFC 7143 §6.1).
pub fn decode(value: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if let Some(h) = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 2048 {
            return None;
        }
        // An odd number of digits has an implied leading zero.
        let padded = if h.len() % 2 == 1 { format!("0{h}") } else { h.to_string() };
        return (0..padded.len())
            .step_by(2)
            .map(|i| padded.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
            .collect();
    }
    let b = value.strip_prefix("0b").or_else(|| value.strip_prefix("0B"))?;
    base64::engine::general_purpose::STANDARD.decode(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CHALLENGE: [u8; 16] = [7; 16];

    fn challenged(chap: &mut Chap) {
        let answer = chap.step(&keys(&[("CHAP_A", "7,5")]), || (42, CHALLENGE)).unwrap();
        assert_eq!(answer[0], ("CHAP_A".into(), "5".into()));
        assert_eq!(answer[1], ("CHAP_I".into(), "42".into()));
        assert_eq!(answer[2].1, format!("0x{}", "07".repeat(16)));
    }

    #[test]
    fn the_right_response_authenticates_once() {
        let mut chap = Chap::new("alice", b"secret-secret");
        challenged(&mut chap);
        let r = format!("0x{}", hex(&expected(42, b"secret-secret", &CHALLENGE)));
        assert_eq!(chap.step(&keys(&[("CHAP_N", "alice"), ("CHAP_R", &r)]), || unreachable!()), Ok(vec![]));
        assert!(chap.done());
        // Replaying the response (or any CHAP key) afterwards fails.
        assert_eq!(chap.step(&keys(&[("CHAP_N", "alice"), ("CHAP_R", &r)]), || unreachable!()), Err(ChapError::Reused));
    }

    #[test]
    fn wrong_secret_user_or_shape_fail() {
        let wrong = format!("0x{}", hex(&expected(42, b"guess", &CHALLENGE)));
        let right = format!("0x{}", hex(&expected(42, b"pw", &CHALLENGE)));
        for (user, response, error) in [
            ("alice", wrong.as_str(), ChapError::WrongResponse),
            ("bob", right.as_str(), ChapError::WrongUser),
            ("alice", "0xzz", ChapError::Malformed),
            ("alice", "plain", ChapError::Malformed),
        ] {
            let mut chap = Chap::new("alice", b"pw");
            challenged(&mut chap);
            let result = chap.step(&keys(&[("CHAP_N", user), ("CHAP_R", response)]), || unreachable!());
            assert_eq!(result, Err(error));
            assert!(chap.step(&keys(&[("CHAP_R", response)]), || unreachable!()).is_err());
        }
    }

    #[test]
    fn out_of_order_unsupported_and_mutual_exchanges_fail() {
        let mut chap = Chap::new("alice", b"pw");
        assert_eq!(chap.step(&keys(&[("CHAP_A", "6,7")]), || (1, CHALLENGE)), Err(ChapError::NoAlgorithm));
        let mut chap = Chap::new("alice", b"pw");
        assert_eq!(chap.step(&keys(&[("CHAP_R", "0x00")]), || (1, CHALLENGE)), Err(ChapError::OutOfOrder));
        let mut chap = Chap::new("alice", b"pw");
        assert_eq!(chap.step(&keys(&[("HeaderDigest", "None")]), || unreachable!()), Ok(vec![]));
        challenged(&mut chap);
        let reflected = format!("0x{}", hex(&CHALLENGE));
        let r = format!("0x{}", hex(&expected(42, b"pw", &CHALLENGE)));
        let mutual = keys(&[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "3"), ("CHAP_C", &reflected)]);
        assert_eq!(chap.step(&mutual, || unreachable!()), Err(ChapError::Reflected));
    }

    #[test]
    fn binary_values_decode_from_hex_and_base64() {
        assert_eq!(decode("0x0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode("0bAQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode("0x"), None);
        assert_eq!(decode("12"), None);
        let (_, a) = fresh().unwrap();
        let (_, b) = fresh().unwrap();
        assert_ne!(a, b);
    }
}
