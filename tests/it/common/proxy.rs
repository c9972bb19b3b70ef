//! A TCP proxy between shipctl and a database server, for the fault tests: it
//! forwards, pauses, cuts, refuses or black-holes connections on command, on a free
//! loopback port, with plain threads (two per connection).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward both ways.
    Pass,
    /// Forward nothing; connections stay open; new ones are connected upstream.
    Pause,
    /// Forward nothing, answer nothing; new connections are accepted and held
    /// without ever reaching the server.
    Blackhole,
    /// Closed at once, open and new connections alike: a server that is down.
    Refuse,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Every socket of every live connection (both ends), for `cut()`.
    sockets: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().expect("proxy mode")
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

const TICK: Duration = Duration::from_millis(20);

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (127.0.0.1).
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            sockets: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(&listener, upstream, &s));
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    fn set(&self, mode: Mode) {
        *self.shared.mode.lock().expect("proxy mode") = mode;
    }

    /// Forward everything again (held black-holed connections are closed:
    /// they never reached the server).
    pub fn pass(&self) {
        self.set(Mode::Pass);
    }

    /// Stop forwarding; connections stay open and new ones are connected.
    pub fn pause(&self) {
        self.set(Mode::Pause);
    }

    /// Close every connection now; new ones pass.
    pub fn cut(&self) {
        self.set(Mode::Pass);
        let mut sockets = self.shared.sockets.lock().expect("proxy sockets");
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Close every connection now and every new one as it comes, as a
    /// stopped server would, until `pass()`.
    pub fn refuse(&self) {
        self.set(Mode::Refuse);
        let mut sockets = self.shared.sockets.lock().expect("proxy sockets");
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forward nothing and answer nothing, on open and new connections alike.
    pub fn blackhole(&self) {
        self.set(Mode::Blackhole);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in self
            .shared
            .sockets
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn register(shared: &Shared, s: &TcpStream) {
    if let Ok(c) = s.try_clone() {
        shared.sockets.lock().expect("proxy sockets").push(c);
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stopped() {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => continue,
        };
        let _ = client.set_nonblocking(false);
        register(shared, &client);
        let shared = shared.clone();
        std::thread::spawn(move || connection(client, upstream, &shared));
    }
}

/// One client: held while black-holed, then connected upstream and pumped.
fn connection(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    // A connection that arrives in a black hole never reaches the server.
    if shared.mode() == Mode::Blackhole {
        while shared.mode() == Mode::Blackhole && !shared.stopped() {
            std::thread::sleep(TICK);
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if shared.mode() == Mode::Refuse {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    register(shared, &server);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let sh = shared.clone();
    let up = std::thread::spawn(move || pump(client, server, &sh));
    pump(s2, c2, shared);
    let _ = up.join();
}

/// Copies `from` to `to` while the mode is Pass; holds what it read while it
/// is not; closes both ends when either side closes or errs.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    'outer: while !shared.stopped() {
        if shared.mode() == Mode::Refuse {
            break;
        }
        if shared.mode() != Mode::Pass {
            std::thread::sleep(TICK);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // Read just as the mode changed: hold it until forwarding resumes.
        while shared.mode() != Mode::Pass {
            if shared.stopped() || shared.mode() == Mode::Refuse {
                break 'outer;
            }
            std::thread::sleep(TICK);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
