//! A loopback TCP proxy per directed link between test nodes, so a test can cut and heal links (network partitions) without touching the nodes.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A directed link: (from node, to node).
type Link = (usize, usize);

/// Links between `n` nodes; node `i` reaches node `j` through the proxy listening on
/// `listen(i, j)`, which forwards to `targets[j]`.
pub struct Links {
    base_port: u16,
    n: usize,
    /// Cut directed links.
    cut: Arc<Mutex<HashSet<Link>>>,
    /// Open proxied connections per directed link (both sockets), to sever on a cut.
    live: Arc<Mutex<Vec<(Link, TcpStream)>>>,
}

impl Links {
    /// Starts `n * (n - 1)` proxies on ports from `base_port` (one per ordered pair).
    pub fn start(base_port: u16, targets: &[SocketAddr]) -> Links {
        let n = targets.len();
        let links = Links { base_port, n, cut: Arc::default(), live: Arc::default() };
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                let listener = TcpListener::bind(links.listen(i, j)).unwrap();
                let (cut, live, target) = (links.cut.clone(), links.live.clone(), targets[j]);
                thread::spawn(move || {
                    for client in listener.incoming().flatten() {
                        if cut.lock().unwrap().contains(&(i, j)) {
                            drop(client);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(target) else { continue };
                        let mut l = live.lock().unwrap();
                        for s in [&client, &server] {
                            if let Ok(c) = s.try_clone() {
                                l.push(((i, j), c));
                            }
                        }
                        drop(l);
                        pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pump(server, client);
                    }
                });
            }
        }
        links
    }

    /// The proxy node `i` dials to reach node `j`.
    pub fn listen(&self, i: usize, j: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port + (i * self.n + j) as u16))
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways: open connections
    /// are severed and new ones refused.
    pub fn split(&self, a: &[usize], b: &[usize]) {
        let mut cut = self.cut.lock().unwrap();
        for &i in a {
            for &j in b {
                cut.insert((i, j));
                cut.insert((j, i));
            }
        }
        let mut live = self.live.lock().unwrap();
        live.retain(|(link, s)| {
            if cut.contains(link) {
                let _ = s.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

/// Copies `from` to `to` on its own thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    if to.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
