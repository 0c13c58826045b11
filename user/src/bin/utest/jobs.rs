//! Job control: process groups and sessions, signals to a group, waiting
//! by group, and stopping and continuing a child as a shell's `fg` and
//! Ctrl-Z do.

use crate::support::*;

pub const TESTS: &[Test] = tests![
    a_child_starts_in_its_parents_group_and_session,
    setpgid_moves_a_child_into_a_new_group,
    setpgid_follows_linuxs_rules,
    setsid_makes_a_new_session_unless_a_group_leader,
    kill_reaches_a_whole_group,
    wait_by_group_waits_only_for_that_group,
    a_stopped_child_is_reported_and_continued,
    sigkill_ends_a_stopped_child,
];

fn getpgid(pid: libc::pid_t) -> i64 {
    // SAFETY: no memory is passed.
    unsafe { libc::getpgid(pid) }.into()
}

fn getsid(pid: libc::pid_t) -> i64 {
    // SAFETY: no memory is passed.
    unsafe { libc::getsid(pid) }.into()
}

/// A child that waits for a byte on a pipe (or its end), then exits 0.
fn parked_child() -> Result<(libc::pid_t, std::os::fd::OwnedFd), String> {
    use std::os::fd::AsRawFd;
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let pid = fork_child(|| {
        // SAFETY: the child's copy of the write end.
        unsafe { libc::close(wfd) };
        let _ = read_up_to(rfd, 1);
        0
    })?;
    Ok((pid, w))
}

fn a_child_starts_in_its_parents_group_and_session() -> TestResult {
    let (me_pgid, me_sid) = (getpgid(0), getsid(0));
    ok("getpgid(0)", me_pgid)?;
    // SAFETY: no memory is passed.
    equals("getpgrp", unsafe { libc::getpgrp() }.into(), me_pgid)?;
    let (child, w) = parked_child()?;
    equals("the child's group", getpgid(child), me_pgid)?;
    equals("the child's session", getsid(child), me_sid)?;
    drop(w);
    exited(wait_for(child)?, 0)?;
    fails_with("getpgid of no process", getpgid(0x3fff_0000), libc::ESRCH)
}

fn setpgid_moves_a_child_into_a_new_group() -> TestResult {
    let (child, w) = parked_child()?;
    // SAFETY: no memory is passed.
    equals("setpgid(child, 0)", unsafe { libc::setpgid(child, 0) }.into(), 0)?;
    equals("the child's new group", getpgid(child), child.into())?;
    check(getpgid(0) != i64::from(child), || "the parent moved with the child".into())?;
    drop(w);
    exited(wait_for(child)?, 0)
}

fn setpgid_follows_linuxs_rules() -> TestResult {
    // SAFETY: no memory is passed; each call must fail.
    unsafe {
        fails_with("setpgid with a negative group", libc::setpgid(0, -1).into(), libc::EINVAL)?;
        fails_with("setpgid of no such process", libc::setpgid(0x3fff_0000, 0).into(), libc::ESRCH)?;
    }
    // Into a group that does not exist in our session: EPERM.
    let (child, w) = parked_child()?;
    // SAFETY: no memory is passed.
    let r = unsafe { libc::setpgid(child, 0x3fff_0000) };
    fails_with("setpgid into a group nobody is in", r.into(), libc::EPERM)?;
    drop(w);
    exited(wait_for(child)?, 0)?;
    // A child that has exec'd may no longer be moved: EACCES. The new
    // program writes a byte once it runs, so the parent knows.
    use std::os::fd::AsRawFd;
    let (ran_r, ran_w) = pipe2(0)?;
    let ran = ran_w.as_raw_fd().to_string();
    let child = fork_child(|| {
        let path = cstr(&self_path());
        let fd = cstr(&ran);
        let a = [path.as_ptr(), c"--sleep-ms".as_ptr(), c"300".as_ptr(), fd.as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated argv; on success this never returns.
        unsafe { libc::execv(path.as_ptr(), a.as_ptr()) };
        2
    })?;
    drop(ran_w);
    read_up_to(ran_r.as_raw_fd(), 1)?;
    // SAFETY: no memory is passed.
    let r = unsafe { libc::setpgid(child, 0) };
    fails_with("setpgid of a child after its execve", r.into(), libc::EACCES)?;
    exited(wait_for(child)?, 0)
}

fn setsid_makes_a_new_session_unless_a_group_leader() -> TestResult {
    let status = in_child(|| {
        // SAFETY: no memory is passed.
        let me = unsafe { libc::getpid() };
        // SAFETY: as above.
        let sid = unsafe { libc::setsid() };
        if sid != me || getsid(0) != i64::from(me) || getpgid(0) != i64::from(me) {
            return 2;
        }
        // Now a group leader: a second setsid is EPERM.
        // SAFETY: as above.
        let again = unsafe { libc::setsid() };
        if again == -1 && errno() == libc::EPERM { 0 } else { 3 }
    })?;
    exited(status, 0)
}

fn kill_reaches_a_whole_group() -> TestResult {
    let (a, wa) = parked_child()?;
    let (b, wb) = parked_child()?;
    // SAFETY: no memory is passed.
    unsafe {
        ok("setpgid(a, 0)", libc::setpgid(a, 0).into())?;
        ok("setpgid(b, a)", libc::setpgid(b, a).into())?;
        equals("kill(-a, SIGTERM)", libc::kill(-a, libc::SIGTERM).into(), 0)?;
    }
    killed_by(wait_for(a)?, libc::SIGTERM)?;
    killed_by(wait_for(b)?, libc::SIGTERM)?;
    drop((wa, wb));
    // SAFETY: no memory is passed.
    fails_with("kill of an empty group", unsafe { libc::kill(-a, 0) }.into(), libc::ESRCH)
}

fn wait_by_group_waits_only_for_that_group() -> TestResult {
    let (inside, w_in) = parked_child()?;
    let (outside, w_out) = parked_child()?;
    // SAFETY: no memory is passed.
    ok("setpgid(inside, 0)", unsafe { libc::setpgid(inside, 0) }.into())?;
    drop(w_out);
    sleep_ms(50);
    let mut status = 0;
    // SAFETY: a valid status pointer. `outside` has ended but is not in
    // the group waited for.
    let r = unsafe { libc::waitpid(-inside, &mut status, libc::WNOHANG) };
    equals("waitpid(-group, WNOHANG) while its member runs", r.into(), 0)?;
    drop(w_in);
    // SAFETY: as above.
    let r = unsafe { libc::waitpid(-inside, &mut status, 0) };
    equals("waitpid(-group)", r.into(), inside.into())?;
    // SAFETY: as above: our own group now holds only `outside`.
    let r = unsafe { libc::waitpid(0, &mut status, 0) };
    equals("waitpid(0) for our own group", r.into(), outside.into())
}

fn a_stopped_child_is_reported_and_continued() -> TestResult {
    let (child, w) = parked_child()?;
    let mut status = 0;
    // SAFETY: signals to our own child; a valid status pointer.
    unsafe {
        ok("kill(SIGSTOP)", libc::kill(child, libc::SIGSTOP).into())?;
        equals("waitpid(WUNTRACED)", libc::waitpid(child, &mut status, libc::WUNTRACED).into(), child.into())?;
        check(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP, || {
            format!("status {status:#x}, wanted stopped by SIGSTOP")
        })?;
        // Reported once: a second WUNTRACED|WNOHANG wait sees nothing new.
        let r = libc::waitpid(child, &mut status, libc::WUNTRACED | libc::WNOHANG);
        equals("a second waitpid(WUNTRACED|WNOHANG)", r.into(), 0)?;
        ok("kill(SIGCONT)", libc::kill(child, libc::SIGCONT).into())?;
        equals("waitpid(WCONTINUED)", libc::waitpid(child, &mut status, libc::WCONTINUED).into(), child.into())?;
        check(libc::WIFCONTINUED(status), || format!("status {status:#x}, wanted continued"))?;
    }
    // Running again: it reads its byte and exits.
    write_all(std::os::fd::AsRawFd::as_raw_fd(&w), b"x")?;
    exited(wait_for(child)?, 0)
}

fn sigkill_ends_a_stopped_child() -> TestResult {
    let (child, _w) = parked_child()?;
    let mut status = 0;
    // SAFETY: signals to our own child; a valid status pointer.
    unsafe {
        ok("kill(SIGSTOP)", libc::kill(child, libc::SIGSTOP).into())?;
        equals("waitpid(WUNTRACED)", libc::waitpid(child, &mut status, libc::WUNTRACED).into(), child.into())?;
        ok("kill(SIGKILL)", libc::kill(child, libc::SIGKILL).into())?;
    }
    killed_by(wait_for(child)?, libc::SIGKILL)
}
