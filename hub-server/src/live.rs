//! Live updates shared by `wait_for_updates`, `read_snapshot` and `GET /events`: the
//! 5-segment cursor, a watcher's watermark, and the event-driven wait.
//!
//! A watermark holds one sequence number per stream: for messages the newest message
//! *visible to the watcher*, for tasks, context and activity the stream head the writer
//! publishes after each commit. Waiting means awaiting the next publish — no polling, no
//! periodic queries — and re-checking only what the watcher can see, so a direct message
//! to someone else does not end the wait. Quiet bookkeeping never moves a head.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::store::{self, Store, StoreResult, Stream, StreamHeads};

pub const STREAM_NAMES: [&str; 5] = ["messages", "tasks", "context", "activity", "artifacts"];
const STREAMS: usize = STREAM_NAMES.len();

/// Which streams a watcher follows, in the fixed order messages, tasks, context, activity,
/// artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSet(pub [bool; STREAMS]);

impl StreamSet {
    pub const ALL: StreamSet = StreamSet([true; STREAMS]);

    /// Parses names (trimmed, case-insensitive, duplicates ignored); empty means all.
    /// Returns the first unknown name as the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<StreamSet, String> {
        let mut set = [false; STREAMS];
        let mut any = false;
        for name in names {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let index = STREAM_NAMES
                .iter()
                .position(|known| *known == name)
                .ok_or(name)?;
            set[index] = true;
            any = true;
        }
        Ok(if any { StreamSet(set) } else { StreamSet::ALL })
    }

    pub fn names(self) -> Vec<&'static str> {
        STREAM_NAMES
            .iter()
            .zip(self.0)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// A cursor that is not four or five base36 numbers joined by `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a cursor is five base36 numbers joined by '.' (m.t.c.a.r)")]
pub struct CursorInvalid;

/// Position in the five streams; written as five lowercase base36 numbers joined by `.`.
/// The four-number form of older hubs still parses (its artifacts position is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor(pub [i64; STREAMS]);

fn base36(mut value: i64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if value <= 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while value > 0 {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

impl Cursor {
    /// `Ok(None)` for a blank cursor; `Err` unless four or five base36 numbers.
    pub fn parse(text: &str) -> Result<Option<Cursor>, CursorInvalid> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() != STREAMS && parts.len() != STREAMS - 1 {
            return Err(CursorInvalid);
        }
        let mut values = [0i64; STREAMS];
        for (slot, part) in values.iter_mut().zip(parts) {
            *slot = i64::from_str_radix(part, 36).map_err(|_| CursorInvalid)?;
            if *slot < 0 || part.starts_with(['+', '-']) {
                return Err(CursorInvalid);
            }
        }
        Ok(Some(Cursor(values)))
    }

    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|v| base36(*v))
            .collect::<Vec<_>>()
            .join(".")
    }

    pub fn get(&self, stream: Stream) -> i64 {
        self.0[stream as usize]
    }
}

/// The watcher's current position in every stream.
pub async fn watermark(store: &Store, watcher: &str, heads: StreamHeads) -> StoreResult<Cursor> {
    let watcher = watcher.to_string();
    let messages = store
        .read(move |db| store::messages::latest_visible_seq(db, &watcher))
        .await?;
    Ok(Cursor([
        messages,
        heads.get(Stream::Tasks),
        heads.get(Stream::Context),
        heads.get(Stream::Activity),
        heads.get(Stream::Artifacts),
    ]))
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    Changed,
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
pub struct WaitOutcome {
    pub end: WaitEnd,
    /// Watched streams: the watermark; unwatched ones: the baseline carried through.
    pub cursor: Cursor,
    pub changed: [bool; STREAMS],
}

/// Waits until a watched stream moves past `baseline` as the watcher sees it, the deadline
/// passes, or `cancel` fires. Checks once before waiting, so a change committed between two
/// waits is reported at once.
pub async fn wait_for_change(
    store: &Store,
    watcher: &str,
    streams: StreamSet,
    baseline: Cursor,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> StoreResult<WaitOutcome> {
    let mut heads_rx = store.subscribe();
    // The messages watermark costs a query; redo it only when the messages head moved.
    let mut messages_checked_at: Option<i64> = None;
    let mut messages_value = baseline.get(Stream::Messages);
    loop {
        let heads = *heads_rx.borrow_and_update();
        let newest_broadcast = heads.get(Stream::Broadcasts);
        if streams.0[Stream::Messages as usize] && newest_broadcast > messages_value {
            // A broadcast is visible to everyone: changed, without an inbox query. The
            // cursor may stay below a newer direct message; the next wait reports that.
            messages_value = newest_broadcast;
        } else if streams.0[Stream::Messages as usize]
            && messages_checked_at != Some(heads.get(Stream::Messages))
        {
            let current = watermark(store, watcher, heads).await?;
            messages_value = current.get(Stream::Messages);
            messages_checked_at = Some(heads.get(Stream::Messages));
        }
        let current = [
            messages_value,
            heads.get(Stream::Tasks),
            heads.get(Stream::Context),
            heads.get(Stream::Activity),
            heads.get(Stream::Artifacts),
        ];
        let mut cursor = baseline;
        let mut changed = [false; STREAMS];
        for index in 0..STREAMS {
            if streams.0[index] {
                changed[index] = current[index] > baseline.0[index];
                cursor.0[index] = current[index].max(baseline.0[index]);
            }
        }
        let outcome = |end| WaitOutcome {
            end,
            cursor,
            changed,
        };
        if changed.iter().any(|c| *c) {
            return Ok(outcome(WaitEnd::Changed));
        }
        tokio::select! {
            result = heads_rx.changed() => {
                if result.is_err() {
                    // The store is shutting down.
                    return Ok(outcome(WaitEnd::Cancelled));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(outcome(WaitEnd::TimedOut)),
            _ = cancel.cancelled() => return Ok(outcome(WaitEnd::Cancelled)),
        }
    }
}

/// Consecutive timeouts per watcher, for the adaptive retry hint. Entries idle for ten
/// minutes are forgotten so the map cannot grow without bound.
#[derive(Debug, Default)]
pub struct Streaks {
    entries: Mutex<HashMap<String, (u32, Instant)>>,
}

const STREAK_IDLE: Duration = Duration::from_secs(600);

impl Streaks {
    /// Records one more timeout; returns the new streak length.
    pub fn bump(&self, watcher: &str) -> u32 {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.retain(|_, (_, seen)| now.duration_since(*seen) < STREAK_IDLE);
        }
        let entry = entries.entry(watcher.to_string()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }

    pub fn reset(&self, watcher: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(watcher);
    }
}

/// The retry hint after `misses` consecutive timeouts (spec tools-core §6.2): exponential in
/// the streak from `base_ms`, capped, with jitter; never below `base_ms`.
pub fn retry_after_ms(misses: u32, base_ms: i64, factor: f64, cap_ms: i64, jitter: f64) -> i64 {
    let exponent = misses.saturating_sub(1).min(6) as i32;
    let nominal = ((base_ms as f64) * factor.powi(exponent))
        .round()
        .min(cap_ms as f64) as i64;
    let low = base_ms.max((nominal as f64 * (1.0 - jitter)).round() as i64);
    let high = low.max(cap_ms.min((nominal as f64 * (1.0 + jitter)).round() as i64));
    low + (rand::rng().random::<f64>() * (high - low) as f64).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_bad_shapes() {
        let cursor = Cursor([0, 35, 36, 1_800_000_000_000, 7]);
        assert_eq!(cursor.encode(), "0.z.10.mywpiww0.7");
        assert_eq!(Cursor::parse(&cursor.encode()), Ok(Some(cursor)));
        assert_eq!(Cursor::parse("  "), Ok(None));
        assert_eq!(Cursor::parse("0.0.0.0"), Ok(Some(Cursor::default())));
        assert_eq!(
            Cursor::parse("A.B.C.D"),
            Ok(Some(Cursor([10, 11, 12, 13, 0])))
        );
        for bad in ["0.0.0", "0.0.0.0.0.0", "0.0.-1.0", "x!.0.0.0", "1:2"] {
            assert_eq!(Cursor::parse(bad), Err(CursorInvalid), "{bad}");
        }
    }

    #[test]
    fn stream_sets() {
        assert_eq!(StreamSet::parse([]), Ok(StreamSet::ALL));
        assert_eq!(
            StreamSet::parse([" Messages ", "messages"])
                .unwrap()
                .names(),
            vec!["messages"]
        );
        assert_eq!(StreamSet::parse(["mail"]), Err("mail".to_string()));
    }

    #[test]
    fn retry_hints_grow_and_stay_in_bounds() {
        for misses in 1..20 {
            let hint = retry_after_ms(misses, 500, 1.5, 10_000, 0.2);
            assert!((500..=10_000).contains(&hint), "{misses}: {hint}");
        }
        assert_eq!(retry_after_ms(1, 500, 1.5, 10_000, 0.0), 500);
        assert_eq!(retry_after_ms(3, 500, 1.5, 10_000, 0.0), 1125);
        assert_eq!(retry_after_ms(30, 500, 1.5, 10_000, 0.0), 5695);
    }
}

/// One gate per inbox: reads of an inbox that mark rows read take turns, each waiting until
/// the previous one's marks have committed (see `tools::reading_marked`).
#[derive(Debug, Default)]
pub struct InboxGates {
    gates: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl InboxGates {
    /// The gate of `agent_id`'s inbox; calls without a caller share one.
    pub fn gate(&self, agent_id: Option<&str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(agent_id.unwrap_or_default().to_string())
            .or_default()
            .clone()
    }

    /// Drops the gates nobody holds or waits on.
    pub fn prune(&self) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
    }
}
