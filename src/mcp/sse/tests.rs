//! Tests for SSE framing: chunk boundaries, line terminators, fields, limits.

use super::*;

/// Feed `chunks` to a fresh framer; the events and what stays pending.
fn frame(chunks: &[&[u8]]) -> (Vec<Bytes>, Bytes) {
    let mut framer = SseFramer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk, &mut out).expect("no limit");
    }
    let pending = framer.take_pending();
    (out.into_iter().map(|e| e.raw).collect(), pending)
}

fn event(raw: &str) -> SseEvent {
    SseEvent {
        raw: Bytes::copy_from_slice(raw.as_bytes()),
    }
}

/// A stream mixing every terminator, comments, fields and multi-line data.
const STREAM: &[u8] = b"\xEF\xBB\xBF: keep-alive comment\n\n\
event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata:\"result\":{}}\r\n\r\n\
id: 2\rretry: 100\rdata: lone cr\r\r\
data\ndata:\ndata:  two spaces\n\n\
\n\
data: mixed\r\n\n\
data: cr then crlf\r\r\n\
: trailing\n\n";

fn expected_events() -> Vec<&'static [u8]> {
    vec![
        b": keep-alive comment\n\n",
        b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata:\"result\":{}}\r\n\r\n",
        b"id: 2\rretry: 100\rdata: lone cr\r\r",
        b"data\ndata:\ndata:  two spaces\n\n",
        b"\n",
        b"data: mixed\r\n\n",
        b"data: cr then crlf\r\r\n",
        b": trailing\n\n",
    ]
}

#[test]
fn whole_stream() {
    let (events, pending) = frame(&[STREAM]);
    assert_eq!(events, expected_events());
    assert!(pending.is_empty());
}

#[test]
fn every_split_point_gives_the_same_events() {
    let expected = expected_events();
    for at in 0..=STREAM.len() {
        let (events, pending) = frame(&[&STREAM[..at], &STREAM[at..]]);
        assert_eq!(events, expected, "split at {at}");
        assert!(pending.is_empty(), "split at {at}");
    }
}

#[test]
fn every_pair_of_split_points_gives_the_same_events() {
    let expected = expected_events();
    for a in 0..=STREAM.len() {
        for b in a..=STREAM.len() {
            let (events, _) = frame(&[&STREAM[..a], &STREAM[a..b], &STREAM[b..]]);
            assert_eq!(events, expected, "split at {a} and {b}");
        }
    }
}

#[test]
fn byte_by_byte() {
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    let (events, pending) = frame(&chunks);
    assert_eq!(events, expected_events());
    assert!(pending.is_empty());
}

#[test]
fn events_and_pending_reassemble_the_stream() {
    let cut = STREAM.len() - 5;
    let (events, pending) = frame(&[&STREAM[..cut]]);
    let mut joined: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
    joined.extend_from_slice(&pending);
    assert_eq!(joined, &STREAM[BOM.len()..cut]);
}

#[test]
fn several_events_in_one_chunk_and_partial_tail() {
    let mut framer = SseFramer::new();
    let mut out = Vec::new();
    framer
        .push(b"data: a\n\ndata: b\n\ndata: c", &mut out)
        .expect("push");
    assert_eq!(out.len(), 2);
    assert_eq!(framer.pending_len(), 7);
    framer.push(b"\n", &mut out).expect("push");
    assert_eq!(out.len(), 2);
    framer.push(b"\n", &mut out).expect("push");
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].data().as_deref(), Some("c"));
    assert_eq!(framer.pending_len(), 0);
}

#[test]
fn crlf_split_across_chunks_is_one_terminator() {
    let (events, pending) = frame(&[b"data: a\r\n\r", b"\ndata: b\n\n"]);
    assert_eq!(events, [&b"data: a\r\n\r\n"[..], b"data: b\n\n"]);
    assert!(pending.is_empty());
}

#[test]
fn trailing_lone_cr_waits_for_the_next_byte() {
    let mut framer = SseFramer::new();
    let mut out = Vec::new();
    framer.push(b"data: a\r\r", &mut out).expect("push");
    assert!(out.is_empty());
    framer.push(b"data: b\r\r", &mut out).expect("push");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].raw, &b"data: a\r\r"[..]);
    // At end of stream the last one is pending, and still readable as an event.
    let last = SseEvent {
        raw: framer.take_pending(),
    };
    assert_eq!(last.data().as_deref(), Some("b"));
}

#[test]
fn bom_is_stripped_only_at_stream_start() {
    let (events, _) = frame(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n"]);
    assert_eq!(events[0], &b"data: x\n\n"[..]);
    assert_eq!(events[1], &b"\xEF\xBB\xBFdata: y\n\n"[..]);
    assert_eq!(
        SseEvent {
            raw: events[1].clone()
        }
        .data(),
        None
    );
    // A partial BOM followed by something else is kept.
    let (events, _) = frame(&[b"\xEF", b"data: x\n\n"]);
    assert_eq!(events[0], &b"\xEFdata: x\n\n"[..]);
}

#[test]
fn data_joins_lines() {
    let e = event(
        "event: message\nid: 7\nretry: 10\n: comment\ndata: a\ndata:b\ndata:  c\ndata\ndata:\n\n",
    );
    assert_eq!(e.data().as_deref(), Some("a\nb\n c\n\n"));
    assert_eq!(
        event("data: {\"x\":1}\r\n\r\n").data().as_deref(),
        Some("{\"x\":1}")
    );
    assert_eq!(event("data:x\rdata:y\r\r").data().as_deref(), Some("x\ny"));
    assert_eq!(event("data\n\n").data().as_deref(), Some(""));
}

#[test]
fn data_ignores_other_fields_and_comments() {
    assert_eq!(event(": data: no\n\n").data(), None);
    assert_eq!(event("id: 1\nevent: data\nretry: 5\n\n").data(), None);
    assert_eq!(event("Data: no\ndatax: no\n data: no\n\n").data(), None);
    assert_eq!(event("\n").data(), None);
}

#[test]
fn data_of_stream_events() {
    let (events, _) = frame(&[STREAM]);
    let data: Vec<_> = events
        .into_iter()
        .map(|raw| SseEvent { raw }.data())
        .collect();
    assert_eq!(
        data,
        [
            None,
            Some("{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{}}".to_owned()),
            Some("lone cr".to_owned()),
            Some("\n\n two spaces".to_owned()),
            None,
            Some("mixed".to_owned()),
            Some("cr then crlf".to_owned()),
            None,
        ]
    );
}

#[test]
fn with_data_keeps_other_lines_in_place() {
    let e =
        event(": c1\r\nevent: message\r\ndata: old1\r\nid: 9\r\ndata: old2\r\nretry: 3\r\n\r\n");
    let rewritten = e.with_data("new");
    assert_eq!(
        rewritten,
        &b": c1\nevent: message\ndata: new\nid: 9\nretry: 3\n\n"[..]
    );
    assert_eq!(SseEvent { raw: rewritten }.data().as_deref(), Some("new"));
}

#[test]
fn with_data_splits_lines() {
    let rewritten = event("data: x\n\n").with_data("a\nb\r\nc\rd\n");
    assert_eq!(
        rewritten,
        &b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"[..]
    );
    assert_eq!(
        SseEvent { raw: rewritten }.data().as_deref(),
        Some("a\nb\nc\nd\n")
    );
}

#[test]
fn with_data_round_trips_through_the_framer() {
    for original in [
        "id: 1\ndata: x\n\n",
        "event: e\r\n: c\r\ndata: x\r\ndata: y\r\n\r\n",
        "id: 2\rdata: x\r\r",
        ": only a comment\n\n",
        "\n",
    ] {
        for data in ["", "{\"jsonrpc\":\"2.0\"}", "two\nlines", " lead"] {
            let rewritten = event(original).with_data(data);
            let (events, pending) = frame(&[&rewritten]);
            assert_eq!(events, std::slice::from_ref(&rewritten), "{original:?}");
            assert!(pending.is_empty());
            assert_eq!(
                SseEvent { raw: rewritten }.data().as_deref(),
                Some(data),
                "{original:?} {data:?}"
            );
        }
    }
}

#[test]
fn with_data_without_data_lines_appends() {
    assert_eq!(
        event("id: 4\n: c\n\n").with_data("d"),
        &b"id: 4\n: c\ndata: d\n\n"[..]
    );
}

#[test]
fn with_data_on_pending_bytes() {
    let e = SseEvent {
        raw: Bytes::from_static(b"id: 1\ndata: partial"),
    };
    assert_eq!(e.data().as_deref(), Some("partial"));
    assert_eq!(e.with_data("x"), &b"id: 1\ndata: x\n\n"[..]);
}

#[test]
fn invalid_utf8_data_is_replaced() {
    let e = SseEvent {
        raw: Bytes::from_static(b"data: a\xffb\n\n"),
    };
    assert_eq!(e.data().as_deref(), Some("a\u{fffd}b"));
}

#[test]
fn limit_allows_events_up_to_it() {
    let mut framer = SseFramer::with_limit(10);
    let mut out = Vec::new();
    framer
        .push(b"data: 12\n\n", &mut out)
        .expect("exactly 10 bytes");
    framer
        .push(b"data: 1", &mut out)
        .expect("partial under limit");
    assert_eq!(out.len(), 1);
}

#[test]
fn limit_refuses_a_large_complete_event() {
    let mut framer = SseFramer::with_limit(10);
    let mut out = Vec::new();
    let result = framer.push(b"data: 1\n\ndata: 123\n\ndata: 2\n\n", &mut out);
    assert_eq!(result, Err(SseError::EventTooLarge { limit: 10 }));
    assert_eq!(out.len(), 1);
    // The framer stays failed.
    assert_eq!(
        framer.push(b"data: 3\n\n", &mut out),
        Err(SseError::EventTooLarge { limit: 10 })
    );
    assert_eq!(out.len(), 1);
    assert_eq!(framer.pending_len(), 0);
}

#[test]
fn limit_refuses_a_large_pending_event() {
    let mut framer = SseFramer::with_limit(16);
    let mut out = Vec::new();
    framer
        .push(b"data: 0123456789", &mut out)
        .expect("16 bytes");
    assert_eq!(
        framer.push(b"a", &mut out),
        Err(SseError::EventTooLarge { limit: 16 })
    );
    // Also a buffer held back by a trailing `\r`.
    let mut framer = SseFramer::with_limit(8);
    assert_eq!(
        framer.push(b"data: 123\r", &mut out),
        Err(SseError::EventTooLarge { limit: 8 })
    );
}

#[test]
fn raw_is_split_out_of_one_buffer() {
    let mut framer = SseFramer::new();
    let mut out = Vec::new();
    framer
        .push(b"data: a\n\ndata: b\n\n", &mut out)
        .expect("push");
    // Both events view the same allocation, one after the other.
    let first_end = out[0].raw.as_ptr() as usize + out[0].raw.len();
    assert_eq!(first_end, out[1].raw.as_ptr() as usize);
}

#[test]
fn default_is_new() {
    let mut framer = SseFramer::default();
    let mut out = Vec::new();
    framer
        .push(&vec![b'x'; 1 << 20], &mut out)
        .expect("no limit");
    assert_eq!(framer.pending_len(), 1 << 20);
}

#[test]
fn data_decodes_invalid_utf8_with_replacement_and_valid_text_as_it_is() {
    let raw: &[u8] =
        b"id: 1\ndata: caf\xc3\xa9 \xe2\x82\xac\ndata: bad \xff\xc3 end\ndata:\xf0\x9f\x98\x80\n\n";
    let event = SseEvent {
        raw: Bytes::copy_from_slice(raw),
    };
    let expected = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(b"caf\xc3\xa9 \xe2\x82\xac"),
        String::from_utf8_lossy(b"bad \xff\xc3 end"),
        "\u{1f600}"
    );
    assert_eq!(event.data().as_deref(), Some(expected.as_str()));
    assert!(expected.contains('\u{fffd}'));
}
