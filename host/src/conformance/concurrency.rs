//! Two sessions at once do not corrupt each other: each reads back its own bytes, creates
//! made at the same time are distinct, and a snapshot read while its device is written keeps
//! its instant.

use super::support::{Dev, Sess, first_difference, pattern, snapshot_of};
use super::{Check, Cx, Res, Why, check, claim};

/// Writes `seed`'s bytes to `dev` in pieces and reads them back, in its own session.
async fn write_and_check(mut s: Sess, dev: Dev, seed: u64) -> Result<(), String> {
    let data = pattern(seed, 600_000);
    for (i, piece) in data.chunks(60_000).enumerate() {
        s.write(&dev, (i * 60_000) as u64, piece)
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    let got = s
        .read(&dev, None, 0, data.len() as u64)
        .await
        .map_err(|e| format!("{e:?}"))?;
    if got != data {
        return Err(format!(
            "{} read back other bytes ({})",
            dev.source(),
            first_difference(&got, &data)
        ));
    }
    Ok(())
}

async fn two_writers(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let devs = cx.devices(&mut s, 2).await?;
    let one = tokio::spawn(write_and_check(cx.sess().await?, devs[0].clone(), 101));
    let two = tokio::spawn(write_and_check(cx.sess().await?, devs[1].clone(), 102));
    for task in [one, two] {
        task.await
            .map_err(|e| Why::Fail(format!("a session panicked: {e}")))?
            .map_err(Why::Fail)?;
    }
    Ok(())
}

async fn reader_during_writes(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let before = pattern(111, 256 << 10);
    s.write(&dev, 0, &before).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    let mut w = cx.sess().await?;
    let target = dev.clone();
    let writing = tokio::spawn(async move {
        for round in 0..8u64 {
            w.write(&target, 0, &pattern(200 + round, 256 << 10))
                .await
                .map_err(|e| format!("{e:?}"))?;
            tokio::task::yield_now().await;
        }
        Ok::<(), String>(())
    });
    let mut reads = 0;
    let mut seen = Vec::new();
    while !writing.is_finished() || reads == 0 {
        seen.push(s.read(&dev, Some(&snap), 0, before.len() as u64).await?);
        reads += 1;
    }
    writing
        .await
        .map_err(|e| Why::Fail(format!("the writer panicked: {e}")))?
        .map_err(|e| Why::Fail(format!("the writer session failed: {e}")))?;
    seen.push(s.read(&dev, Some(&snap), 0, before.len() as u64).await?);
    for (i, got) in seen.iter().enumerate() {
        claim!(
            *got == before,
            "read {i} of the snapshot while the device was written saw other bytes ({})",
            first_difference(got, &before)
        );
    }
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.concurrent.writers",
        StorageArray,
        [Concurrency],
        Nothing,
        "Two sessions writing two LUNs at the same time each read back exactly their own bytes.",
        |cx| { two_writers(cx).await }
    ),
    check!(
        "a.concurrent.creates",
        StorageArray,
        [Concurrency],
        Nothing,
        "Two sessions creating LUNs at the same time with different tokens get two distinct LUNs, both listed.",
        |cx| {
            let (n1, t1, n2, t2) = (cx.name("lun"), cx.token(), cx.name("lun"), cx.token());
            let (mut a1, mut a2) = (cx.array().await?, cx.array().await?);
            let one = tokio::spawn(async move { a1.create_lun(&n1, super::cx::CAP, &t1).await });
            let two = tokio::spawn(async move { a2.create_lun(&n2, super::cx::CAP, &t2).await });
            let one = one.await.map_err(|e| Why::Fail(e.to_string()))??;
            let two = two.await.map_err(|e| Why::Fail(e.to_string()))??;
            claim!(one.wwn != two.wwn, "both got WWN {}", one.wwn);
            let listed = cx.array().await?.list_luns().await?;
            claim!(
                listed.iter().any(|l| l.wwn == one.wwn) && listed.iter().any(|l| l.wwn == two.wwn),
                "not both LUNs are listed"
            );
            Ok(())
        }
    ),
    check!(
        "a.concurrent.snapshot-reads",
        StorageArray,
        [Concurrency, Isolation],
        Nothing,
        "A LUN snapshot read by one session while another session keeps writing the LUN reads its instant every time.",
        |cx| { reader_during_writes(cx).await }
    ),
    check!(
        "h.concurrent.writers",
        Hypervisor,
        [Concurrency],
        Nothing,
        "Two sessions writing two disks of one VM at the same time each read back exactly their own bytes.",
        |cx| { two_writers(cx).await }
    ),
    check!(
        "h.concurrent.creates",
        Hypervisor,
        [Concurrency],
        Nothing,
        "Two sessions creating VMs at the same time with different tokens get two distinct VMs, both listed.",
        |cx| {
            let host = cx.host().await?;
            let spec = |name: String| crate::model::VmSpec {
                hardware: Default::default(),
                name,
                host_id: host.clone(),
                devices: vec![],
            };
            let (s1, t1, s2, t2) = (
                spec(cx.name("vm")),
                cx.token(),
                spec(cx.name("vm")),
                cx.token(),
            );
            let (mut h1, mut h2) = (cx.hv().await?, cx.hv().await?);
            let one = tokio::spawn(async move { h1.create_vm(&s1, &t1).await });
            let two = tokio::spawn(async move { h2.create_vm(&s2, &t2).await });
            let one = one.await.map_err(|e| Why::Fail(e.to_string()))??;
            let two = two.await.map_err(|e| Why::Fail(e.to_string()))??;
            claim!(one.id != two.id, "both got VM id {}", one.id);
            let listed = cx.hv().await?.list_vms().await?;
            claim!(
                listed.iter().any(|v| v.id == one.id) && listed.iter().any(|v| v.id == two.id),
                "not both VMs are listed"
            );
            Ok(())
        }
    ),
    check!(
        "h.concurrent.snapshot-reads",
        Hypervisor,
        [Concurrency, Isolation],
        Nothing,
        "A disk snapshot read by one session while another session keeps writing the disk reads its instant every time.",
        |cx| { reader_during_writes(cx).await }
    ),
];
