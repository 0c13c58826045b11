//! The first process (`/bin/init`): starts the shell, waits for it, and
//! reaps any other child meanwhile; exits with the shell's status.
#![allow(unsafe_code)] // fork, execve and wait are called directly

fn main() {
    println!("init: running as pid {}", std::process::id());
    // SAFETY: the child only calls execve or _exit.
    let shell = unsafe { libc::fork() };
    if shell == 0 {
        let path = c"/bin/sh";
        let argv = [path.as_ptr(), std::ptr::null()];
        let env = [c"PATH=/bin".as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated strings in NULL-terminated arrays.
        unsafe {
            libc::execve(path.as_ptr(), argv.as_ptr(), env.as_ptr());
            libc::_exit(127);
        }
    }
    if shell < 0 {
        eprintln!("init: cannot fork the shell");
        std::process::exit(1);
    }
    loop {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == shell || pid < 0 {
            std::process::exit(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 1 });
        }
    }
}
