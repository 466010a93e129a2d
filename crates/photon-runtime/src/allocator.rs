//! The process allocator of every service: mimalloc. Services allocate and free many buffers of
//! every size at once on all cores (request bodies, gRPC messages, scan pages); glibc's malloc
//! spent a seventh of the CPU of a listing benchmark consolidating and unlinking its free lists.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
