//! Zero-copy forwarding for the no-toxic path (Linux `splice(2)` through a
//! pipe). Copying every byte through user space costs a proxy about half of
//! loopback throughput on a small machine; splice moves page references
//! instead, so the proxy stays out of the way of what a drill measures.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// A kernel pipe used as the splice buffer of one direction.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    cap: usize,
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by us alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe means fewer syscalls per megabyte; the default
        // 64 KiB is kept when the kernel refuses.
        // SAFETY: fcntl on an fd we own, with integer arguments.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        // SAFETY: as above.
        let cap = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let cap = if cap > 0 { cap as usize } else { 64 * 1024 };
        Ok(Pipe { read, write, cap })
    }

    /// Bytes the pipe can hold.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Moves up to `max` bytes from `src` into the pipe without waiting.
    /// `Ok(0)` is end of stream; `WouldBlock` clears `src`'s readiness.
    pub(crate) fn fill_now(&self, src: &TcpStream, max: usize) -> io::Result<usize> {
        src.try_io(Interest::READABLE, || {
            splice(src.as_raw_fd(), self.write.as_raw_fd(), max)
        })
    }

    /// Moves up to `held` bytes from the pipe to `dst` without waiting.
    pub(crate) fn drain_now(&self, dst: &TcpStream, held: usize) -> io::Result<usize> {
        dst.try_io(Interest::WRITABLE, || {
            splice(self.read.as_raw_fd(), dst.as_raw_fd(), held)
        })
    }
}

fn splice(from: libc::c_int, to: libc::c_int, len: usize) -> io::Result<usize> {
    // SAFETY: plain fds, null offsets (both are streams), no pointers kept.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
