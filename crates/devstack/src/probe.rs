//! Talking to the stack on loopback without an HTTP client library: readiness
//! (`/readyz`, `/healthz`), `/metrics`, and the few JSON calls the tools make (an admin
//! login, creating an item). HTTP/1.0 with `Connection: close`, so the answer is
//! whatever arrives until the server closes; it works inside any tokio runtime, the
//! tests' actix one included.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take before it counts as no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// An answer: its status and its body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one request to 127.0.0.1:`port`; `None` when nothing answered in time.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<Answer> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange(port, method, path, headers, body))
        .await
        .ok()?
        .ok()
}

async fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or_default());
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_answer(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// Status and body of a raw HTTP/1.x answer.
pub fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Answer {
        status,
        body: body.to_owned(),
    })
}

pub async fn get(port: u16, path: &str) -> Option<Answer> {
    request(port, "GET", path, &[], None).await
}

/// Whether `path` answers 200 on 127.0.0.1:`port`.
pub async fn is_ok(port: u16, path: &str) -> bool {
    get(port, path).await.is_some_and(|a| a.status == 200)
}

/// Waits until `path` answers 200 or `deadline` passes; whether it did.
pub async fn wait_until_ok(port: u16, path: &str, deadline: Instant) -> bool {
    loop {
        if is_ok(port, path).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_its_status_and_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\r\n{\"status\":\"unready\"}";
        assert_eq!(
            parse_answer(raw),
            Some(Answer {
                status: 503,
                body: "{\"status\":\"unready\"}".into()
            })
        );
        assert_eq!(parse_answer(b"garbage"), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_no_answer() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        assert_eq!(get(port, "/readyz").await, None);
        assert!(!wait_until_ok(port, "/readyz", Instant::now()).await);
    }
}
