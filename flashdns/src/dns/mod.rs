//! The DNS engine: zones in memory (`zone`), the authoritative lookup (`lookup`), and the
//! whole query-to-response step (`respond`) the transports call. No I/O here.

pub mod dname;
pub mod lookup;
pub mod respond;
pub mod signed;
pub mod synth;
pub mod zone;

pub use lookup::{Answer, Catalog};
pub use respond::{respond, Outcome, Transport};
pub use synth::PtrSynthesis;
pub use zone::{Zone, ZoneError};
