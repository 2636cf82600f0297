//! A group snapshot is one instant. A writer session writes sequence number n to device A,
//! then to B, in a loop, while a second session snapshots A and B together: in the
//! snapshot B must hold A's number or A's − 1 (anything else means the members were taken
//! at different instants).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::engine::ports::CallResult;
use crate::model::{AdapterError, SnapshotRef};

use super::support::{Dev, Sess, snapshot_of};
use super::{Check, Cx, Res, Why, check, claim};

/// Group snapshots taken under the writer.
const ROUNDS: usize = 4;
/// The writer gives up after this long (it normally runs well under a second).
const WRITER_LIMIT: Duration = Duration::from_secs(30);

/// The 512-byte block the writer puts at offset 0: `n` repeated.
fn block(n: u64) -> Vec<u8> {
    n.to_le_bytes().repeat(64)
}

/// One write through a fresh writer, retried (for up to [`WRITER_LIMIT`]) when the adapter
/// answers `conflict` (a snapshot happened since the writer was opened, or is being taken),
/// as a guest's I/O would be.
async fn write_once(s: &mut Sess, dev: &Dev, data: &[u8]) -> CallResult<()> {
    let started = Instant::now();
    loop {
        let w = s.writer(dev).await?;
        let result = async {
            s.dp().write(&w, 0, data).await?;
            s.dp().flush(&w).await
        }
        .await;
        let closed = s.dp().close_writer(w).await;
        match result {
            Err(e)
                if started.elapsed() < WRITER_LIMIT
                    && matches!(
                        &e.kind,
                        crate::engine::ports::CallErrorKind::Adapter(AdapterError::Conflict(_))
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => {
                other?;
                return closed;
            }
        }
    }
}

/// Writes n to every device in order, n = 1, 2, …, until stopped; `done` is the last n
/// written to all of them.
async fn writer(
    mut s: Sess,
    devs: Vec<Dev>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < WRITER_LIMIT {
        n += 1;
        for dev in &devs {
            write_once(&mut s, dev, &block(n))
                .await
                .map_err(|e| e.to_string())?;
        }
        done.store(n, Ordering::SeqCst);
        // Adapter calls may finish without ever returning to the scheduler; let the
        // session taking snapshots (and the timers it waits on) run.
        tokio::task::yield_now().await;
    }
    Ok(())
}

async fn wait_for(done: &AtomicU64, at_least: u64, stop: &AtomicBool) -> Result<(), Why> {
    let started = Instant::now();
    while done.load(Ordering::SeqCst) < at_least {
        if started.elapsed() > WRITER_LIMIT || stop.load(Ordering::SeqCst) {
            return Err(Why::Fail(format!(
                "the writer session stalled at round {} (waited for {at_least})",
                done.load(Ordering::SeqCst)
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn value(s: &mut Sess, dev: &Dev, snapshot: &str) -> Result<u64, Why> {
    let bytes = s.read(dev, Some(snapshot), 0, 8).await?;
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| Why::Fail(format!("read of 8 bytes answered {}", b.len())))?;
    Ok(u64::from_le_bytes(bytes))
}

/// What one group snapshot under the writer saw.
struct Round {
    refs: Vec<SnapshotRef>,
    /// Rounds the writer had finished when the snapshot call returned.
    done_after: u64,
}

/// Runs the writer and takes [`ROUNDS`] group snapshots of two devices under it; answers
/// the devices, the rounds and the writer's last number.
async fn under_writer(cx: &mut Cx) -> Result<(Sess, Vec<Dev>, Vec<Round>, u64), Why> {
    let mut s = cx.sess().await?;
    let devs = cx.devices(&mut s, 2).await?;
    let writer_session = cx.sess().await?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(writer(
        writer_session,
        devs.clone(),
        done.clone(),
        stop.clone(),
    ));
    let mut rounds = Vec::new();
    let outcome: Result<(), Why> = async {
        let mut last = 0;
        for _ in 0..ROUNDS {
            wait_for(&done, last + 2, &stop).await?;
            let token = cx.token();
            let asked = Instant::now();
            let refs = s.snapshot(&devs, &token).await?;
            claim!(
                asked.elapsed() < Duration::from_secs(10),
                "the group snapshot under a writer took {:.1} s",
                asked.elapsed().as_secs_f64()
            );
            last = done.load(Ordering::SeqCst);
            rounds.push(Round {
                refs,
                done_after: last,
            });
        }
        // Let the writer go on well past the last snapshot.
        wait_for(&done, last + 3, &stop).await
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    let written = task
        .await
        .map_err(|e| Why::Fail(format!("the writer session panicked: {e}")))?;
    written.map_err(|e| Why::Fail(format!("the writer session failed: {e}")))?;
    outcome?;
    Ok((s, devs, rounds, done.load(Ordering::SeqCst)))
}

async fn one_instant(cx: &mut Cx) -> Res {
    let (mut s, devs, rounds, _) = under_writer(cx).await?;
    for (i, round) in rounds.iter().enumerate() {
        let a = value(&mut s, &devs[0], &snapshot_of(&round.refs, &devs[0])?.id).await?;
        let b = value(&mut s, &devs[1], &snapshot_of(&round.refs, &devs[1])?.id).await?;
        claim!(
            a >= 1,
            "group snapshot {i}: A holds {a}, but the writer had written before it"
        );
        claim!(
            b == a || b + 1 == a,
            "group snapshot {i}: A holds {a} but B holds {b} (B must hold A's number or A's − 1)"
        );
    }
    Ok(())
}

async fn does_not_follow(cx: &mut Cx) -> Res {
    let (mut s, devs, rounds, last) = under_writer(cx).await?;
    for (i, round) in rounds.iter().enumerate() {
        for dev in &devs {
            let v = value(&mut s, dev, &snapshot_of(&round.refs, dev)?.id).await?;
            claim!(
                v <= round.done_after + 1,
                "group snapshot {i} of {} holds {v}, written after it (the writer was at {} when it was taken, {last} at the end)",
                dev.source(),
                round.done_after
            );
        }
    }
    Ok(())
}

async fn same_time(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let devs = cx.devices(&mut s, 3).await?;
    let token = cx.token();
    let refs = s.snapshot(&devs, &token).await?;
    claim!(refs.len() == 3, "three devices, {} snapshots", refs.len());
    let min = refs.iter().map(|r| r.created_at).min().unwrap_or(0);
    let max = refs.iter().map(|r| r.created_at).max().unwrap_or(0);
    claim!(
        max - min <= 1000,
        "the members' created-at differ by {} ms",
        max - min
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.group.one-instant",
        StorageArray,
        [Group, Concurrency],
        Nothing,
        "A snapshot-luns of two LUNs taken while another session writes n to A then B holds in B A's number or A's − 1.",
        |cx| { one_instant(cx).await }
    ),
    check!(
        "a.group.does-not-follow",
        StorageArray,
        [Group, Isolation],
        Nothing,
        "The members of a snapshot-luns taken under a writer do not follow the writes made after it.",
        |cx| { does_not_follow(cx).await }
    ),
    check!(
        "a.group.same-time",
        StorageArray,
        [Group],
        Nothing,
        "The members of a snapshot-luns report created-at times within one second of each other.",
        |cx| { same_time(cx).await }
    ),
    check!(
        "h.group.one-instant",
        Hypervisor,
        [Group, Concurrency],
        Nothing,
        "A snapshot-disks of two disks taken while another session writes n to A then B holds in B A's number or A's − 1.",
        |cx| { one_instant(cx).await }
    ),
    check!(
        "h.group.does-not-follow",
        Hypervisor,
        [Group, Isolation],
        Nothing,
        "The members of a snapshot-disks taken under a writer do not follow the writes made after it.",
        |cx| { does_not_follow(cx).await }
    ),
    check!(
        "h.group.same-time",
        Hypervisor,
        [Group],
        Nothing,
        "The members of a snapshot-disks report created-at times within one second of each other.",
        |cx| { same_time(cx).await }
    ),
];
