//! One write command's data-out (RFC 7143 §4.2.5): immediate data, unsolicited Data-Out up to
//! FirstBurstLength, then solicited bursts, one R2T at a time (MaxOutstandingR2T=1), all in
//! order (DataPDUInOrder and DataSequenceInOrder are Yes). Checks every Data-Out's tag, DataSN
//! and offset; one out of step fails the transfer: the connection rejects it, the rest of the
//! sequence is dropped, and the command ends with CHECK CONDITION and nothing written (error
//! recovery level 0 retries nothing). Pure: the connection sends what it decides.

use bytes::{Bytes, BytesMut};

use crate::iscsi::pdu::RESERVED_TAG;

/// A Data-Out that does not fit the transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataOutError {
    #[error("immediate data of {len} bytes exceeds the {limit} allowed")]
    ImmediateTooLong { len: u32, limit: u32 },
    #[error("unsolicited Data-Out when none is expected")]
    UnexpectedUnsolicited,
    #[error("Data-Out for target transfer tag {0:#x}, which is not outstanding")]
    UnknownTag(u32),
    #[error("DataSN {got}, expected {expected}")]
    DataSn { got: u32, expected: u32 },
    #[error("buffer offset {got}, expected {expected}")]
    Offset { got: u32, expected: u32 },
    #[error("Data-Out overruns its burst")]
    Overrun,
    #[error("the burst ended {0} bytes short")]
    ShortBurst(u32),
}

/// The R2T outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Burst {
    ttt: u32,
    offset: u32,
    len: u32,
    got: u32,
    data_sn: u32,
}

/// What the connection does next for a command waiting for its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Data is still arriving.
    Wait,
    /// Send an R2T.
    Solicit { ttt: u32, r2t_sn: u32, offset: u32, len: u32 },
    /// All the data the command uses has arrived.
    Deliver(Bytes),
}

#[derive(Debug)]
pub struct Transfer {
    /// Bytes the command uses: the least of what its CDB asks for and the initiator's
    /// expected data transfer length.
    need: u32,
    /// Unsolicited bytes allowed: FirstBurstLength, or less if the command is shorter.
    unsolicited_limit: u32,
    buf: BytesMut,
    /// Bytes received so far, all in order from offset 0 (those beyond `need` are dropped).
    received: u32,
    unsolicited_open: bool,
    unsolicited_sn: u32,
    burst: Option<Burst>,
    r2t_sn: u32,
    delivered: bool,
    /// A Data-Out was out of step: everything after it is dropped.
    failed: bool,
}

impl Transfer {
    /// A transfer for a command announcing `edtl` bytes, of which it uses `need`, arriving
    /// with `immediate` data and, unless `last`, unsolicited Data-Out to follow.
    pub fn new(edtl: u32, need: u32, first_burst: u32, immediate: &[u8], last: bool) -> Result<Self, DataOutError> {
        let unsolicited_limit = first_burst.min(edtl);
        let len = immediate.len() as u32;
        if len > unsolicited_limit {
            return Err(DataOutError::ImmediateTooLong { len, limit: unsolicited_limit });
        }
        let mut t = Transfer {
            need: need.min(edtl),
            unsolicited_limit,
            buf: BytesMut::new(),
            received: 0,
            unsolicited_open: !last,
            unsolicited_sn: 0,
            burst: None,
            r2t_sn: 0,
            delivered: false,
            failed: false,
        };
        t.keep(immediate);
        Ok(t)
    }

    /// Data-Out may still arrive (unsolicited, or a burst under way): a response waits for
    /// the sequence's last PDU.
    pub fn sequence_open(&self) -> bool {
        self.unsolicited_open || (self.failed && self.burst.is_some())
    }

    /// A Data-Out was out of step; the command must not run.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// R2Ts sent so far (they count towards the response's ExpDataSN).
    pub fn r2ts(&self) -> u32 {
        self.r2t_sn
    }

    fn keep(&mut self, data: &[u8]) {
        let room = self.need.saturating_sub(self.received) as usize;
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.received += data.len() as u32;
    }

    /// Takes one Data-Out PDU. After an error, the transfer has failed: later Data-Out of the
    /// same sequence is dropped until its last PDU.
    pub fn data_out(
        &mut self,
        ttt: u32,
        data_sn: u32,
        offset: u32,
        data: &[u8],
        last: bool,
    ) -> Result<(), DataOutError> {
        if self.failed {
            if last {
                self.unsolicited_open = false;
                self.burst = None;
            }
            return Ok(());
        }
        let result = self.accept(ttt, data_sn, offset, data, last);
        if result.is_err() {
            self.failed = true;
            if last {
                self.unsolicited_open = false;
                self.burst = None;
            }
        }
        result
    }

    fn accept(&mut self, ttt: u32, data_sn: u32, offset: u32, data: &[u8], last: bool) -> Result<(), DataOutError> {
        let len = data.len() as u32;
        if ttt == RESERVED_TAG {
            if !self.unsolicited_open {
                return Err(DataOutError::UnexpectedUnsolicited);
            }
            if data_sn != self.unsolicited_sn {
                return Err(DataOutError::DataSn { got: data_sn, expected: self.unsolicited_sn });
            }
            if offset != self.received {
                return Err(DataOutError::Offset { got: offset, expected: self.received });
            }
            if self.received.checked_add(len).is_none_or(|end| end > self.unsolicited_limit) {
                return Err(DataOutError::Overrun);
            }
            self.unsolicited_sn += 1;
            self.keep(data);
            if last {
                self.unsolicited_open = false;
            }
            return Ok(());
        }
        let Some(mut burst) = self.burst.filter(|b| b.ttt == ttt) else {
            return Err(DataOutError::UnknownTag(ttt));
        };
        if data_sn != burst.data_sn {
            return Err(DataOutError::DataSn { got: data_sn, expected: burst.data_sn });
        }
        if offset != burst.offset + burst.got {
            return Err(DataOutError::Offset { got: offset, expected: burst.offset + burst.got });
        }
        if burst.got.checked_add(len).is_none_or(|end| end > burst.len) {
            return Err(DataOutError::Overrun);
        }
        burst.got += len;
        burst.data_sn += 1;
        self.keep(data);
        if burst.got == burst.len {
            self.burst = None;
        } else if last {
            return Err(DataOutError::ShortBurst(burst.len - burst.got));
        } else {
            self.burst = Some(burst);
        }
        Ok(())
    }

    /// For a command waiting for its data (which the connection calls once memory for all of
    /// it is reserved): deliver it, solicit the next burst, or wait.
    pub fn next(&mut self, max_burst: u32, new_tag: impl FnOnce() -> u32) -> Next {
        if self.delivered || self.failed {
            return Next::Wait;
        }
        if self.received >= self.need {
            self.delivered = true;
            return Next::Deliver(std::mem::take(&mut self.buf).freeze());
        }
        if self.burst.is_some() || self.unsolicited_open {
            return Next::Wait;
        }
        self.buf.reserve((self.need - self.received) as usize);
        let len = (self.need - self.received).min(max_burst);
        let ttt = new_tag();
        let burst = Burst { ttt, offset: self.received, len, got: 0, data_sn: 0 };
        self.burst = Some(burst);
        let r2t_sn = self.r2t_sn;
        self.r2t_sn += 1;
        Next::Solicit { ttt, r2t_sn, offset: burst.offset, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> u32 {
        77
    }

    #[test]
    fn immediate_then_unsolicited_then_solicited_bursts() {
        let mut t = Transfer::new(10_000, 10_000, 4096, &[1; 1000], false).unwrap();
        assert_eq!(t.next(4096, tag), Next::Wait, "unsolicited data still coming");
        t.data_out(RESERVED_TAG, 0, 1000, &[2; 1000], false).unwrap();
        t.data_out(RESERVED_TAG, 1, 2000, &[3; 2096], true).unwrap();
        assert!(!t.sequence_open());
        assert_eq!(t.next(4096, tag), Next::Solicit { ttt: 77, r2t_sn: 0, offset: 4096, len: 4096 });
        t.data_out(77, 0, 4096, &[4; 2048], false).unwrap();
        t.data_out(77, 1, 6144, &[5; 2048], true).unwrap();
        assert_eq!(t.next(4096, || 78), Next::Solicit { ttt: 78, r2t_sn: 1, offset: 8192, len: 1808 });
        t.data_out(78, 0, 8192, &[6; 1808], true).unwrap();
        let Next::Deliver(data) = t.next(4096, tag) else { panic!("expected the data") };
        assert_eq!(data.len(), 10_000);
        assert_eq!((data[0], data[1000], data[2000], data[4096], data[6144], data[9999]), (1, 2, 3, 4, 5, 6));
        assert_eq!(t.r2ts(), 2);
    }

    #[test]
    fn data_beyond_what_the_command_uses_is_dropped() {
        let mut t = Transfer::new(2048, 512, 65536, &[9; 2048], true).unwrap();
        let Next::Deliver(data) = t.next(4096, tag) else { panic!("expected the data") };
        assert_eq!(&data[..], &[9; 512]);
        let mut t = Transfer::new(0, 512, 65536, &[], true).unwrap();
        assert_eq!(t.next(4096, tag), Next::Deliver(Bytes::new()));
    }

    fn fresh(first_burst: u32, last: bool) -> Transfer {
        Transfer::new(4096, 4096, first_burst, &[], last).unwrap()
    }

    #[test]
    fn out_of_step_data_out_is_refused() {
        assert!(matches!(Transfer::new(100, 100, 65536, &[0; 101], true), Err(DataOutError::ImmediateTooLong { .. })));
        let cases: [(Transfer, u32, u32, u32, usize, DataOutError); 5] = [
            (fresh(1024, false), RESERVED_TAG, 1, 0, 512, DataOutError::DataSn { got: 1, expected: 0 }),
            (fresh(1024, false), RESERVED_TAG, 0, 512, 512, DataOutError::Offset { got: 512, expected: 0 }),
            (fresh(1024, false), RESERVED_TAG, 0, 0, 2048, DataOutError::Overrun),
            (fresh(1024, true), RESERVED_TAG, 0, 0, 1, DataOutError::UnexpectedUnsolicited),
            (fresh(1024, true), 5, 0, 0, 1, DataOutError::UnknownTag(5)),
        ];
        for (mut t, ttt, sn, offset, len, error) in cases {
            assert_eq!(t.data_out(ttt, sn, offset, &vec![0; len], false), Err(error));
            assert!(t.failed());
            assert_eq!(t.next(1024, tag), Next::Wait, "a failed transfer delivers nothing");
        }
        let mut t = fresh(1024, true);
        let Next::Solicit { ttt, .. } = t.next(1024, tag) else { panic!("expected an R2T") };
        assert_eq!(t.data_out(ttt, 0, 0, &[0; 512], true), Err(DataOutError::ShortBurst(512)));
        assert!(!t.sequence_open());
    }

    #[test]
    fn after_a_failure_the_sequence_is_dropped_until_its_end() {
        let mut t = fresh(4096, false);
        assert!(t.data_out(RESERVED_TAG, 1, 0, &[0; 512], false).is_err());
        assert!(t.sequence_open());
        assert_eq!(t.data_out(RESERVED_TAG, 0, 512, &[0; 512], false), Ok(()));
        assert_eq!(t.data_out(RESERVED_TAG, 9, 9, &[0; 512], true), Ok(()));
        assert!(!t.sequence_open());
    }
}
