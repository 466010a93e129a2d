//! Option haggling in fixed newstyle: reads options one at a time and answers each, until the
//! client chooses an export (GO or EXPORT_NAME), asks for TLS, or aborts. One call covers one
//! stream; after STARTTLS the session calls it again over TLS with fresh state, since the spec
//! forbids carrying negotiated state across the upgrade.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::SessionError;
use super::exports::Exports;
use super::options::{self, BadOption};
use super::proto::*;
use super::request::SessionRules;
use crate::device::BlockDevice;

/// Where TLS stands on this stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// The server has no TLS configured (the spec's NOTLS mode).
    Off,
    /// TLS is configured and not yet started: every option but STARTTLS and ABORT is refused
    /// (FORCEDTLS).
    Required,
    /// The stream is already TLS.
    Active,
}

/// The export chosen and what was negotiated for it.
pub struct Negotiated {
    pub name: String,
    pub device: Arc<dyn BlockDevice>,
    pub rules: SessionRules,
}

pub enum Outcome {
    Transmit(Negotiated),
    StartTls,
    Abort,
}

/// The haggling state that options change.
struct Haggle<'a> {
    exports: &'a dyn Exports,
    tls: TlsMode,
    no_zeroes: bool,
    structured: bool,
    /// The export `base:allocation` was selected for, if any.
    meta_export: Option<String>,
}

/// What one option led to.
enum Step {
    Continue,
    Done(Outcome),
}

pub async fn haggle<S>(
    stream: &mut S,
    exports: &dyn Exports,
    tls: TlsMode,
    no_zeroes: bool,
) -> Result<Outcome, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut state = Haggle { exports, tls, no_zeroes, structured: false, meta_export: None };
    loop {
        let (option, data) = read_option(stream).await?;
        let mut out = BytesMut::new();
        let step = state.answer(option, &data, &mut out).await?;
        stream.write_all(&out).await?;
        stream.flush().await?;
        if let Step::Done(outcome) = step {
            return Ok(outcome);
        }
    }
}

/// One option header and its data (bounded by `MAX_OPTION_LEN`).
async fn read_option<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(u32, Vec<u8>), SessionError> {
    let mut head = [0u8; OPTION_HEADER_LEN];
    stream.read_exact(&mut head).await?;
    let magic = u64::from_be_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
    if magic != IHAVEOPT {
        return Err(SessionError::protocol(format!("option magic {magic:#018x} is not IHAVEOPT")));
    }
    let option = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let len = u32::from_be_bytes([head[12], head[13], head[14], head[15]]);
    if len > MAX_OPTION_LEN {
        return Err(SessionError::protocol(format!("option {option} carries {len} bytes (limit {MAX_OPTION_LEN})")));
    }
    let mut data = vec![0u8; len as usize];
    stream.read_exact(&mut data).await?;
    Ok((option, data))
}

fn reply(out: &mut BytesMut, option: u32, kind: u32, data: &[u8]) {
    out.extend_from_slice(&option_reply(option, kind, data));
}

fn refuse(out: &mut BytesMut, option: u32, kind: u32, message: &str) -> Step {
    reply(out, option, kind, truncate(message, MAX_STRING).as_bytes());
    Step::Continue
}

impl Haggle<'_> {
    async fn answer(&mut self, option: u32, data: &[u8], out: &mut BytesMut) -> Result<Step, SessionError> {
        if self.tls == TlsMode::Required && !matches!(option, OPT_STARTTLS | OPT_ABORT) {
            if option == OPT_EXPORT_NAME {
                // EXPORT_NAME cannot be refused with a reply; the spec says to hang up.
                return Err(SessionError::protocol("NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only server"));
            }
            return Ok(refuse(out, option, REP_ERR_TLS_REQD, "this server requires TLS (NBD_OPT_STARTTLS)"));
        }
        Ok(match option {
            OPT_EXPORT_NAME => return self.export_name(data, out).await,
            OPT_ABORT => {
                reply(out, option, REP_ACK, &[]);
                Step::Done(Outcome::Abort)
            }
            OPT_LIST => self.list(data, out).await,
            OPT_STARTTLS => match self.tls {
                _ if !data.is_empty() => refuse(out, option, REP_ERR_INVALID, "STARTTLS carries no data"),
                TlsMode::Off => refuse(out, option, REP_ERR_POLICY, "TLS is not configured on this server"),
                TlsMode::Active => refuse(out, option, REP_ERR_INVALID, "TLS is already active"),
                TlsMode::Required => {
                    reply(out, option, REP_ACK, &[]);
                    Step::Done(Outcome::StartTls)
                }
            },
            OPT_INFO | OPT_GO => self.info_or_go(option, data, out).await,
            OPT_STRUCTURED_REPLY if !data.is_empty() => {
                refuse(out, option, REP_ERR_INVALID, "STRUCTURED_REPLY carries no data")
            }
            OPT_STRUCTURED_REPLY => {
                self.structured = true;
                reply(out, option, REP_ACK, &[]);
                Step::Continue
            }
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => self.meta_context(option, data, out),
            _ => refuse(out, option, REP_ERR_UNSUP, "unsupported option"),
        })
    }

    async fn list(&self, data: &[u8], out: &mut BytesMut) -> Step {
        if !data.is_empty() {
            return refuse(out, OPT_LIST, REP_ERR_INVALID, "LIST carries no data");
        }
        match self.exports.list().await {
            Ok(names) => {
                for name in names.iter().filter(|n| n.len() <= MAX_STRING) {
                    let mut server = BytesMut::with_capacity(4 + name.len());
                    server.put_u32(name.len() as u32);
                    server.put_slice(name.as_bytes());
                    reply(out, OPT_LIST, REP_SERVER, &server);
                }
                reply(out, OPT_LIST, REP_ACK, &[]);
                Step::Continue
            }
            Err(e) => refuse(out, OPT_LIST, REP_ERR_PLATFORM, &format!("listing exports failed: {e}")),
        }
    }

    /// Opens an export for INFO, GO or EXPORT_NAME; `Err` is the message for the client.
    async fn open(&self, name: &str) -> Result<Arc<dyn BlockDevice>, String> {
        match self.exports.open(name).await {
            Ok(Some(device)) => Ok(device),
            Ok(None) => Err(format!("no export named {name:?}")),
            Err(e) => Err(format!("export {name:?} is not available: {e}")),
        }
    }

    fn negotiated(&self, name: String, device: Arc<dyn BlockDevice>) -> Negotiated {
        let rules = SessionRules {
            size: device.size(),
            read_only: device.read_only(),
            structured: self.structured,
            base_allocation: self.meta_export.as_deref() == Some(name.as_str()),
        };
        Negotiated { name, device, rules }
    }

    async fn export_name(&self, data: &[u8], out: &mut BytesMut) -> Result<Step, SessionError> {
        let name = options::string(data).map_err(|e| SessionError::protocol(format!("EXPORT_NAME: {e}")))?;
        // An export that cannot be opened cannot be refused with a reply either.
        let device = self.open(&name).await.map_err(SessionError::Protocol)?;
        let n = self.negotiated(name, device);
        out.put_u64(n.rules.size);
        out.put_u16(n.rules.transmission_flags());
        if !self.no_zeroes {
            out.put_bytes(0, 124);
        }
        Ok(Step::Done(Outcome::Transmit(n)))
    }

    async fn info_or_go(&self, option: u32, data: &[u8], out: &mut BytesMut) -> Step {
        let request = match options::parse_info(data) {
            Ok(r) => r,
            Err(BadOption(why)) => return refuse(out, option, REP_ERR_INVALID, why),
        };
        let device = match self.open(&request.name).await {
            Ok(d) => d,
            Err(message) => return refuse(out, option, REP_ERR_UNKNOWN, &message),
        };
        let n = self.negotiated(request.name, device);
        let mut export = BytesMut::with_capacity(12);
        export.put_u16(INFO_EXPORT);
        export.put_u64(n.rules.size);
        export.put_u16(n.rules.transmission_flags());
        reply(out, option, REP_INFO, &export);
        // Sent whether asked or not (the spec allows unrequested information): clients that
        // do not understand it ignore it, and the limits are the defaults anyway.
        let mut sizes = BytesMut::with_capacity(14);
        sizes.put_u16(INFO_BLOCK_SIZE);
        sizes.put_u32(1);
        sizes.put_u32(preferred_block_size(n.device.block_size()));
        sizes.put_u32(MAX_PAYLOAD);
        reply(out, option, REP_INFO, &sizes);
        if request.requests.contains(&INFO_NAME) {
            let mut name = BytesMut::with_capacity(2 + n.name.len());
            name.put_u16(INFO_NAME);
            name.put_slice(n.name.as_bytes());
            reply(out, option, REP_INFO, &name);
        }
        reply(out, option, REP_ACK, &[]);
        if option == OPT_GO {
            Step::Done(Outcome::Transmit(n))
        } else {
            Step::Continue
        }
    }

    fn meta_context(&mut self, option: u32, data: &[u8], out: &mut BytesMut) -> Step {
        if option == OPT_SET_META_CONTEXT {
            // Setting replaces the selection even when it fails.
            self.meta_export = None;
        }
        if !self.structured {
            return refuse(out, option, REP_ERR_INVALID, "negotiate structured replies first");
        }
        let request = match options::parse_meta(data) {
            Ok(r) => r,
            Err(BadOption(why)) => return refuse(out, option, REP_ERR_INVALID, why),
        };
        // The export is not opened here (opening may take a lease); a context selected for a
        // name that GO then fails on is simply never used.
        let selected = if option == OPT_LIST_META_CONTEXT {
            options::list_matches(&request.queries)
        } else {
            options::set_selects(&request.queries)
        };
        if selected {
            let mut context = BytesMut::with_capacity(4 + BASE_ALLOCATION.len());
            context.put_u32(if option == OPT_LIST_META_CONTEXT { 0 } else { BASE_ALLOCATION_ID });
            context.put_slice(BASE_ALLOCATION.as_bytes());
            reply(out, option, REP_META_CONTEXT, &context);
            if option == OPT_SET_META_CONTEXT {
                self.meta_export = Some(request.name);
            }
        }
        reply(out, option, REP_ACK, &[]);
        Step::Continue
    }
}

/// The preferred block size advertised: the device's, if it is one the spec allows (a power of
/// two from 512 to the maximum payload), else 4096.
pub fn preferred_block_size(device: u32) -> u32 {
    if device.is_power_of_two() && (512..=MAX_PAYLOAD).contains(&device) {
        device
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_block_size_is_sane() {
        assert_eq!(preferred_block_size(4096), 4096);
        assert_eq!(preferred_block_size(65536), 65536);
        assert_eq!(preferred_block_size(512), 512);
        assert_eq!(preferred_block_size(0), 4096);
        assert_eq!(preferred_block_size(256), 4096);
        assert_eq!(preferred_block_size(3000), 4096);
    }
}
