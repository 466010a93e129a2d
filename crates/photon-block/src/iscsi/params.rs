//! Operational parameter negotiation (RFC 7143 §13): each key the initiator offers is answered
//! with the result of the key's function (minimum, AND, OR, or the target's choice from a
//! list) and the result recorded in `SessionParams`. Pure; the login driver calls it.
//!
//! The target keeps one connection per session, error recovery level 0, and data in order;
//! it accepts unsolicited and immediate data within `FIRST_BURST`.

/// The longest data segment the target accepts, declared to the initiator; it bounds what one
/// PDU may make the target hold.
pub const MAX_RECV_SEGMENT: u32 = 256 * 1024;
/// The most data solicited by one R2T.
pub const MAX_BURST: u32 = 1024 * 1024;
/// The most unsolicited (immediate plus unsolicited Data-Out) data per command.
pub const FIRST_BURST: u32 = 64 * 1024;
/// The RFC's defaults for keys nobody mentions.
const DEFAULT_SEGMENT: u32 = 8192;
const DEFAULT_MAX_BURST: u32 = 262_144;
const DEFAULT_FIRST_BURST: u32 = 65_536;

/// What a session's login settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    pub header_digest: bool,
    pub data_digest: bool,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    /// The longest data segment the initiator accepts (its MaxRecvDataSegmentLength).
    pub max_send_segment: u32,
    /// The longest data segment the target accepts.
    pub max_recv_segment: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl Default for SessionParams {
    fn default() -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            initial_r2t: true,
            immediate_data: true,
            max_send_segment: DEFAULT_SEGMENT,
            max_recv_segment: MAX_RECV_SEGMENT,
            max_burst: DEFAULT_MAX_BURST.min(MAX_BURST),
            first_burst: DEFAULT_FIRST_BURST.min(FIRST_BURST),
            time2wait: 2,
            time2retain: 20,
        }
    }
}

/// Keys the login driver handles itself (names, session type, security); `Negotiation`
/// leaves them alone.
pub fn is_login_key(key: &str) -> bool {
    matches!(key, "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" | "AuthMethod")
        || key.starts_with("CHAP_")
}

/// The operational keys of one login, and what has been answered.
#[derive(Debug, Default)]
pub struct Negotiation {
    pub params: SessionParams,
    declared_recv_segment: bool,
}

impl Negotiation {
    /// The answer to one offered key (`None` for keys needing none).
    pub fn offer(&mut self, key: &str, value: &str) -> Option<(String, String)> {
        let p = &mut self.params;
        let answer: String = match key {
            "HeaderDigest" | "DataDigest" => {
                let choice = value.split(',').find(|v| matches!(*v, "None" | "CRC32C"));
                let Some(choice) = choice else { return reply(key, "Reject") };
                let on = choice == "CRC32C";
                if key == "HeaderDigest" {
                    p.header_digest = on;
                } else {
                    p.data_digest = on;
                }
                choice.into()
            }
            "MaxConnections" => match number(value, 1, 65535) {
                Some(_) => "1".into(),
                None => "Reject".into(),
            },
            "InitialR2T" => match boolean(value) {
                // OR with our "No": the initiator decides.
                Some(v) => {
                    p.initial_r2t = v;
                    yes_no(v)
                }
                None => "Reject".into(),
            },
            "ImmediateData" => match boolean(value) {
                // AND with our "Yes": the initiator decides.
                Some(v) => {
                    p.immediate_data = v;
                    yes_no(v)
                }
                None => "Reject".into(),
            },
            "MaxRecvDataSegmentLength" => match number(value, 512, 0xff_ffff) {
                Some(v) => {
                    p.max_send_segment = v;
                    self.declared_recv_segment = true;
                    p.max_recv_segment.to_string()
                }
                None => "Reject".into(),
            },
            "MaxBurstLength" => match number(value, 512, 0xff_ffff) {
                Some(v) => {
                    p.max_burst = v.min(MAX_BURST);
                    p.first_burst = p.first_burst.min(p.max_burst);
                    p.max_burst.to_string()
                }
                None => "Reject".into(),
            },
            "FirstBurstLength" => match number(value, 512, 0xff_ffff) {
                Some(v) => {
                    p.first_burst = v.min(FIRST_BURST).min(p.max_burst);
                    p.first_burst.to_string()
                }
                None => "Reject".into(),
            },
            "DefaultTime2Wait" => match number(value, 0, 3600) {
                Some(v) => {
                    p.time2wait = v.max(2) as u16;
                    p.time2wait.to_string()
                }
                None => "Reject".into(),
            },
            "DefaultTime2Retain" => match number(value, 0, 3600) {
                Some(v) => {
                    p.time2retain = v.min(20) as u16;
                    p.time2retain.to_string()
                }
                None => "Reject".into(),
            },
            "MaxOutstandingR2T" => match number(value, 1, 65535) {
                Some(_) => "1".into(),
                None => "Reject".into(),
            },
            // OR with our "Yes": always in order.
            "DataPDUInOrder" | "DataSequenceInOrder" => match boolean(value) {
                Some(_) => "Yes".into(),
                None => "Reject".into(),
            },
            "ErrorRecoveryLevel" => match number(value, 0, 2) {
                Some(_) => "0".into(),
                None => "Reject".into(),
            },
            // AND with our "No": markers and iSER are never used.
            "IFMarker" | "OFMarker" | "RDMAExtensions" => "No".into(),
            "IFMarkInt" | "OFMarkInt" | "InitiatorRecvDataSegmentLength" | "TargetRecvDataSegmentLength" => {
                "Irrelevant".into()
            }
            _ if is_login_key(key) => return None,
            _ => "NotUnderstood".into(),
        };
        Some((key.to_string(), answer))
    }

    /// What the target must still declare before leaving operational negotiation: its own
    /// MaxRecvDataSegmentLength, if the initiator never offered its own (which is when the
    /// target answers with it).
    pub fn finish(&mut self) -> Vec<(String, String)> {
        if self.declared_recv_segment {
            return Vec::new();
        }
        self.declared_recv_segment = true;
        vec![("MaxRecvDataSegmentLength".into(), self.params.max_recv_segment.to_string())]
    }
}

fn reply(key: &str, value: &str) -> Option<(String, String)> {
    Some((key.to_string(), value.to_string()))
}

fn yes_no(v: bool) -> String {
    if v { "Yes" } else { "No" }.into()
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// A numeric value (decimal, or hex with 0x) within `[min, max]`.
pub fn number(value: &str, min: u32, max: u32) -> Option<u32> {
    let n = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => value.parse::<u64>().ok()?,
    };
    let n = u32::try_from(n).ok()?;
    (min..=max).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: &mut Negotiation, key: &str, value: &str) -> String {
        n.offer(key, value).map(|(_, v)| v).unwrap_or_default()
    }

    #[test]
    fn libiscsi_offer_settles_as_expected() {
        let mut n = Negotiation::default();
        assert_eq!(answer(&mut n, "HeaderDigest", "None,CRC32C"), "None");
        assert_eq!(answer(&mut n, "DataDigest", "CRC32C,None"), "CRC32C");
        assert_eq!(answer(&mut n, "InitialR2T", "No"), "No");
        assert_eq!(answer(&mut n, "ImmediateData", "Yes"), "Yes");
        assert_eq!(answer(&mut n, "MaxBurstLength", "16776192"), MAX_BURST.to_string());
        assert_eq!(answer(&mut n, "FirstBurstLength", "262144"), FIRST_BURST.to_string());
        assert_eq!(answer(&mut n, "MaxRecvDataSegmentLength", "262144"), MAX_RECV_SEGMENT.to_string());
        assert_eq!(answer(&mut n, "MaxConnections", "1"), "1");
        assert_eq!(answer(&mut n, "ErrorRecoveryLevel", "2"), "0");
        assert_eq!(answer(&mut n, "MaxOutstandingR2T", "8"), "1");
        assert_eq!(answer(&mut n, "DataPDUInOrder", "No"), "Yes");
        assert_eq!(answer(&mut n, "IFMarker", "No"), "No");
        assert_eq!(answer(&mut n, "X-com.example.Foo", "1"), "NotUnderstood");
        assert!(n.offer("InitiatorName", "iqn.x").is_none());
        assert!(n.finish().is_empty(), "already declared with the initiator's offer");
        let p = n.params;
        assert!(!p.header_digest && p.data_digest && !p.initial_r2t && p.immediate_data);
        assert_eq!((p.max_send_segment, p.max_burst, p.first_burst), (262_144, MAX_BURST, FIRST_BURST));
    }

    #[test]
    fn bad_values_are_rejected_and_defaults_hold() {
        let mut n = Negotiation::default();
        assert_eq!(answer(&mut n, "HeaderDigest", "MD5"), "Reject");
        assert_eq!(answer(&mut n, "MaxRecvDataSegmentLength", "100"), "Reject");
        assert_eq!(answer(&mut n, "MaxBurstLength", "0x1000000"), "Reject");
        assert_eq!(answer(&mut n, "InitialR2T", "maybe"), "Reject");
        assert_eq!(n.params, SessionParams::default());
        assert_eq!(n.finish(), vec![("MaxRecvDataSegmentLength".to_string(), MAX_RECV_SEGMENT.to_string())]);
        assert!(n.finish().is_empty());
    }

    #[test]
    fn first_burst_never_exceeds_max_burst() {
        let mut n = Negotiation::default();
        assert_eq!(answer(&mut n, "MaxBurstLength", "4096"), "4096");
        assert_eq!(answer(&mut n, "FirstBurstLength", "65536"), "4096");
        assert_eq!(number("0x200", 0, 1000), Some(512));
        assert_eq!(number("99999999999", 0, u32::MAX), None);
    }
}
