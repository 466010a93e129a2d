//! Network namespaces: each VPC on a node lives in one, named under /run/netns like
//! `ip netns add` makes them (so `ip netns exec` works for operators), and outlives the process
//! (a bind mount holds it), so a restart of prismnet disturbs no traffic. Work inside another
//! namespace runs on a short-lived thread that enters it (`setns` changes only the calling
//! thread); a netlink socket opened there stays bound to that namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const RUN_DIR: &str = "/run/netns";

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn cstring(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with NUL"))
}

/// A namespace given by name (under /run/netns) or by path.
pub fn resolve(name_or_path: &str) -> PathBuf {
    if name_or_path.starts_with('/') {
        PathBuf::from(name_or_path)
    } else {
        Path::new(RUN_DIR).join(name_or_path)
    }
}

pub fn open(path: &Path) -> io::Result<File> {
    File::open(path).map_err(|e| io::Error::new(e.kind(), format!("network namespace {}: {e}", path.display())))
}

/// Whether `path` holds a namespace (a bind mount of one, not the empty file under it).
fn is_namespace(path: &Path) -> bool {
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct.
    let Ok(c) = cstring(path) else { return false };
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut fs) } == 0) && fs.f_type as i64 == libc::NSFS_MAGIC as i64
}

/// Makes /run/netns a shared mount, as iproute2 does, so namespaces made here are seen from
/// other mount namespaces (a unit's private view, the operator's shell).
fn share_run_dir() -> io::Result<()> {
    std::fs::create_dir_all(RUN_DIR)?;
    let dir = cstring(Path::new(RUN_DIR))?;
    let none = c"none";
    // SAFETY: mount(2) with NUL-terminated strings; no data argument.
    let shared = |flags| unsafe { libc::mount(none.as_ptr(), dir.as_ptr(), none.as_ptr(), flags, std::ptr::null()) };
    if shared(libc::MS_SHARED | libc::MS_REC) == 0 {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself first.
    // SAFETY: as above.
    if unsafe { libc::mount(dir.as_ptr(), dir.as_ptr(), none.as_ptr(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) } != 0 {
        return Err(last_error("bind-mounting /run/netns"));
    }
    if shared(libc::MS_SHARED | libc::MS_REC) != 0 {
        return Err(last_error("making /run/netns shared"));
    }
    Ok(())
}

/// Creates the namespace `name` unless it exists; `true` when it was created.
pub fn ensure(name: &str) -> io::Result<bool> {
    let path = resolve(name);
    if is_namespace(&path) {
        return Ok(false);
    }
    share_run_dir()?;
    File::create(&path).map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    let target = cstring(&path)?;
    // A fresh thread: unshare moves only it into a new namespace, which the bind mount keeps
    // after the thread is gone.
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // SAFETY: unshare(2) of the calling thread's network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(last_error("unshare(CLONE_NEWNET)"));
            }
            let own = c"/proc/thread-self/ns/net";
            let none = c"none";
            // SAFETY: bind mount of this thread's namespace onto the file just made.
            if unsafe { libc::mount(own.as_ptr(), target.as_ptr(), none.as_ptr(), libc::MS_BIND, std::ptr::null()) } != 0 {
                return Err(last_error("bind-mounting the new namespace"));
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(true)
}

/// Removes the namespace `name` (its devices go with it once nothing else holds it).
pub fn remove(name: &str) -> io::Result<()> {
    let path = resolve(name);
    let c = cstring(&path)?;
    // SAFETY: umount2 on a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(io::Error::new(e.kind(), format!("unmounting {}: {e}", path.display())));
        }
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(e.kind(), format!("removing {}: {e}", path.display()))),
        _ => Ok(()),
    }
}

/// The names under /run/netns starting with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect()
}

/// Runs `work` on a thread inside the namespace `ns`.
pub fn within<T: Send>(ns: &File, work: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) of this thread to an open namespace file.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(last_error("setns"));
            }
            work()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a thread inside a namespace panicked")))
    })
}

/// Sets the sysctl at `key` (`net/ipv4/ip_forward`) inside `ns`.
pub fn sysctl(ns: &File, key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{key}");
    within(ns, || std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("{path} = {value}: {e}"))))
}

/// A netlink handle whose socket lives in `ns` (`None`: this process's own namespace).
pub fn netlink(ns: Option<&File>) -> io::Result<rtnetlink::Handle> {
    let runtime = tokio::runtime::Handle::current();
    let open = || {
        let _entered = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok((connection, handle))
    };
    let (connection, handle) = match ns {
        Some(ns) => within(ns, open)?,
        None => open()?,
    };
    runtime.spawn(connection);
    Ok(handle)
}
