//! Reads past the end are short, never garbage: a read crossing the end answers exactly
//! the bytes up to it; one at or beyond the end answers nothing (or `invalid`).

use super::cx::CAP;
use super::support::{Kind, first_difference, pattern, refused, snapshot_of};
use super::{Check, Cx, Res, check, claim};

const TAIL: usize = 5000;

async fn short(cx: &mut Cx, from_snapshot: bool) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let tail = pattern(95, TAIL);
    s.write(&dev, CAP - TAIL as u64, &tail).await?;
    let snap = if from_snapshot {
        let token = cx.token();
        Some(
            snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
                .id
                .clone(),
        )
    } else {
        None
    };
    let r = s.reader(&dev, snap.as_deref()).await?;
    let got = s.dp().read(&r, CAP - TAIL as u64, 2 * TAIL as u64).await?;
    s.dp().close_reader(r).await?;
    claim!(
        got.len() == TAIL,
        "a read of {} bytes {TAIL} bytes before the end answered {} bytes",
        2 * TAIL,
        got.len()
    );
    claim!(
        got == tail,
        "the short read answered other bytes than written ({})",
        first_difference(&got, &tail)
    );
    Ok(())
}

async fn nothing_at(cx: &mut Cx, offset: u64) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    s.write(&dev, CAP - 512, &[0xEE; 512]).await?;
    let r = s.reader(&dev, None).await?;
    let answer = s.dp().read(&r, offset, 4096).await;
    s.dp().close_reader(r).await?;
    match answer {
        Ok(bytes) => claim!(
            bytes.is_empty(),
            "a read at {offset} of a {CAP}-byte device answered {} bytes",
            bytes.len()
        ),
        Err(e) => refused::<()>(Err(e), &[Kind::Invalid], &format!("a read at {offset}"))?,
    }
    Ok(())
}

async fn in_chunks(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let r = s.reader(&dev, None).await?;
    let mut total = 0u64;
    let mut offset = 0;
    // 1 MiB + 1 reads: the last one must stop exactly at the end.
    loop {
        let got = s.dp().read(&r, offset, (1 << 20) + 1).await?;
        if got.is_empty() {
            break;
        }
        total += got.len() as u64;
        offset += got.len() as u64;
        claim!(
            offset <= CAP,
            "reads ran to {offset}, past the {CAP}-byte end"
        );
    }
    s.dp().close_reader(r).await?;
    claim!(
        total == CAP,
        "reading to the end answered {total} bytes of {CAP}"
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.past-end.short",
        StorageArray,
        [PastEnd],
        Nothing,
        "A read of a LUN crossing its end answers exactly the bytes up to the end, as written.",
        |cx| { short(cx, false).await }
    ),
    check!(
        "a.past-end.snapshot",
        StorageArray,
        [PastEnd],
        Nothing,
        "A read of a LUN snapshot crossing its end answers exactly the bytes up to the end, as written.",
        |cx| { short(cx, true).await }
    ),
    check!(
        "a.past-end.at-end",
        StorageArray,
        [PastEnd],
        Nothing,
        "A read of a LUN at exactly its end answers no bytes (or invalid).",
        |cx| { nothing_at(cx, CAP).await }
    ),
    check!(
        "a.past-end.beyond",
        StorageArray,
        [PastEnd],
        Nothing,
        "A read of a LUN starting beyond its end answers no bytes (or invalid).",
        |cx| { nothing_at(cx, CAP + 65_536).await }
    ),
    check!(
        "a.past-end.to-the-end",
        StorageArray,
        [PastEnd],
        Nothing,
        "Reading a LUN in odd-sized pieces until an empty answer yields exactly its capacity.",
        |cx| { in_chunks(cx).await }
    ),
    check!(
        "h.past-end.short",
        Hypervisor,
        [PastEnd],
        Nothing,
        "A read of a virtual disk crossing its end answers exactly the bytes up to the end, as written.",
        |cx| { short(cx, false).await }
    ),
    check!(
        "h.past-end.snapshot",
        Hypervisor,
        [PastEnd],
        Nothing,
        "A read of a disk snapshot crossing its end answers exactly the bytes up to the end, as written.",
        |cx| { short(cx, true).await }
    ),
    check!(
        "h.past-end.at-end",
        Hypervisor,
        [PastEnd],
        Nothing,
        "A read of a virtual disk at exactly its end answers no bytes (or invalid).",
        |cx| { nothing_at(cx, CAP).await }
    ),
    check!(
        "h.past-end.beyond",
        Hypervisor,
        [PastEnd],
        Nothing,
        "A read of a virtual disk starting beyond its end answers no bytes (or invalid).",
        |cx| { nothing_at(cx, CAP + 65_536).await }
    ),
    check!(
        "h.past-end.to-the-end",
        Hypervisor,
        [PastEnd],
        Nothing,
        "Reading a virtual disk in odd-sized pieces until an empty answer yields exactly its capacity.",
        |cx| { in_chunks(cx).await }
    ),
];
