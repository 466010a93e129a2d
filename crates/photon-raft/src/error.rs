//! The crate's error type, for what happens outside openraft's own `StorageError`.

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: std::path::PathBuf, source: rocksdb::Error },
    #[error("RocksDB column family {0} is missing")]
    MissingColumnFamily(String),
    #[error("cannot start the Raft WAL sync thread: {0}")]
    WalSyncThread(std::io::Error),
    #[error("peer transport: {0}")]
    Transport(String),
}
