#![allow(clippy::unwrap_used)]

use tokio::io::{AsyncWriteExt, DuplexStream};

use super::*;

/// A provider end that sends `pieces` and then closes, unless `keep_open`: then its end is
/// returned, to send more.
async fn answer_from(pieces: &[&[u8]], keep_open: bool) -> (Stream, Option<DuplexStream>) {
    let (ours, mut theirs) = tokio::io::duplex(256 * 1024);
    for piece in pieces {
        theirs.write_all(piece).await.unwrap();
    }
    let theirs = keep_open.then_some(theirs);
    (Box::new(ours), theirs)
}

/// A provider end whose every write reaches the reader in pieces of at most `at_most` bytes.
fn trickled(wire: &'static [u8], at_most: usize) -> Stream {
    let (ours, mut theirs) = tokio::io::duplex(at_most);
    tokio::spawn(async move {
        let _ = theirs.write_all(wire).await;
        // kept open until the reader is done with it
        let _ = tokio::io::AsyncReadExt::read(&mut theirs, &mut [0u8; 1]).await;
    });
    Box::new(ours)
}

/// Reads the whole body, piece by piece.
async fn body(answer: &mut H1Answer) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    while let Some(piece) = answer.read_body().await? {
        assert!(!piece.is_empty(), "an empty piece was handed out");
        all.extend_from_slice(&piece);
    }
    Ok(all)
}

/// How reading `wire` (header and body) fails; the provider end closes after it unless
/// `keep_open`.
async fn failure(wire: &[u8], keep_open: bool) -> Box<Error> {
    let (stream, _open) = answer_from(&[wire], keep_open).await;
    let result = match H1Answer::read(stream, false, None).await {
        Ok(mut answer) => body(&mut answer).await.map(|_| ()),
        Err(e) => Err(e),
    };
    result.unwrap_err()
}

#[tokio::test]
async fn a_length_framed_body_is_read_and_the_connection_is_reusable() {
    let (stream, _open) = answer_from(
        &[b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Empty:\r\nContent-Length: 11\r\n\r\n{\"a\":", b"true}\n"],
        true,
    )
    .await;
    let mut answer = H1Answer::read(stream, false, None).await.unwrap();
    assert_eq!(answer.header().status.as_u16(), 200);
    assert_eq!(
        answer.header().headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(answer.header().headers.get("x-empty").unwrap(), "");
    assert_eq!(body(&mut answer).await.unwrap(), b"{\"a\":true}\n");
    assert!(answer.done());
    assert!(answer.into_reusable().is_some());
}

#[tokio::test]
async fn a_chunked_body_is_decoded_across_any_split_with_extensions_and_trailers() {
    let wire: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
    // every size of piece the wire may arrive in
    for at_most in 1..wire.len() {
        let mut answer = H1Answer::read(trickled(wire, at_most), false, None)
            .await
            .unwrap();
        assert_eq!(
            body(&mut answer).await.unwrap(),
            b"hello world",
            "pieces of {at_most}"
        );
        assert!(answer.into_reusable().is_some(), "pieces of {at_most}");
    }
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (stream, _open) = answer_from(
        &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"],
        true,
    )
    .await;
    let mut answer = H1Answer::read(stream, false, None).await.unwrap();
    assert_eq!(answer.header().status.as_u16(), 201);
    assert_eq!(body(&mut answer).await.unwrap(), b"ok");
}

#[tokio::test]
async fn a_body_without_length_ends_at_the_close_and_is_not_reused() {
    let (stream, _) = answer_from(&[b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the close"], false).await;
    let mut answer = H1Answer::read(stream, false, None).await.unwrap();
    assert_eq!(body(&mut answer).await.unwrap(), b"until the close");
    assert!(answer.done());
    assert!(answer.into_reusable().is_none());
}

#[tokio::test]
async fn a_close_before_the_framing_ends_is_a_closed_connection_not_an_end() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ] {
        let e = failure(wire, false).await;
        assert_eq!(e.etype(), &ErrorType::ConnectionClosed, "{e}");
    }
}

#[tokio::test]
async fn malformed_answers_are_refused() {
    for (wire, expected) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"[..],
            ErrorType::InvalidHTTPHeader,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            ErrorType::InvalidHTTPHeader,
        ),
        (b"HTTP/1.1 2000 OK\r\n\r\n", ErrorType::InvalidHTTPHeader),
        (b"not http at all\r\n\r\n", ErrorType::InvalidHTTPHeader),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            INVALID_CHUNK,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            INVALID_CHUNK,
        ),
    ] {
        let e = failure(wire, true).await;
        assert_eq!(
            e.etype(),
            &expected,
            "{}: {e}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[tokio::test]
async fn no_body_follows_head_204_and_304() {
    for (wire, head) in [
        (&b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"[..], true),
        (b"HTTP/1.1 204 No Content\r\n\r\n", false),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        ),
    ] {
        let (stream, _open) = answer_from(&[wire], true).await;
        let mut answer = H1Answer::read(stream, head, None).await.unwrap();
        assert!(answer.done());
        assert_eq!(answer.read_body().await.unwrap(), None);
        assert!(answer.into_reusable().is_some());
    }
}

#[tokio::test]
async fn connection_close_bytes_past_the_body_and_http_1_0_are_not_reused() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
    ] {
        let (stream, _open) = answer_from(&[wire], true).await;
        let mut answer = H1Answer::read(stream, false, None).await.unwrap();
        let _ = answer.read_body().await.unwrap();
        assert!(
            answer.into_reusable().is_none(),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
    let keep = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
    let (stream, _open) = answer_from(&[keep], true).await;
    let mut answer = H1Answer::read(stream, false, None).await.unwrap();
    assert_eq!(body(&mut answer).await.unwrap(), b"ok");
    assert!(answer.into_reusable().is_some());
}

#[tokio::test]
async fn a_silent_provider_times_out_and_a_waiting_read_loses_nothing() {
    let (stream, open) = answer_from(
        &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"],
        true,
    )
    .await;
    let mut open = open.unwrap();
    let mut answer = H1Answer::read(stream, false, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    let e = answer.read_body().await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ReadTimedout);
    // a read given up while waiting (the relay polls once and drops it) takes nothing away
    answer.set_read_timeout(None);
    {
        let read = answer.read_body();
        tokio::pin!(read);
        assert!(futures_poll_once(read.as_mut()).await.is_none());
    }
    open.write_all(b"3\r\nabc\r\n0\r\n\r\n").await.unwrap();
    assert_eq!(body(&mut answer).await.unwrap(), b"abc");
    // a waiting stream holds no buffer of its own
    assert_eq!(answer.buffered.capacity(), 0);
}

#[tokio::test]
async fn a_large_header_spanning_reads_is_parsed_and_an_oversized_one_refused() {
    let long = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\n\r\nok",
        "v".repeat(20_000)
    );
    let (stream, _open) = answer_from(&[long.as_bytes()], true).await;
    let mut answer = H1Answer::read(stream, false, None).await.unwrap();
    assert_eq!(answer.header().headers.get("x-long").unwrap().len(), 20_000);
    assert_eq!(body(&mut answer).await.unwrap(), b"ok");

    let huge = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n", "v".repeat(MAX_HEAD));
    let (stream, _open) = answer_from(&[huge.as_bytes()], true).await;
    let e = H1Answer::read(stream, false, None).await.err().unwrap();
    assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
}

/// Polls `fut` once: its output if ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
