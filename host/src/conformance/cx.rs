//! What a check works with: sessions on the endpoints, names and tokens unique to the run
//! and check, and fixtures (LUNs, VMs with disks) named so the sweep finds them.

use crate::engine::ports::{Dns, Hypervisor, Machine, StorageArray};
use crate::model::{AdapterKind, DeviceSpec, LunInfo, NewDisk, RecordKind, VmInfo, VmSpec};

use super::Why;
use super::cleanup::Inventory;
use super::subject::{Side, Subject};
use super::support::{Dev, Sess};

/// Capacity of every device the suite creates.
pub const CAP: u64 = 4 << 20;

/// The state of one run, handed to each check in turn.
pub struct Cx {
    pub kind: AdapterKind,
    subject: Side,
    array: Option<Side>,
    /// Prefix of everything the run creates, `tmc-` and 8 hex digits.
    pub run: String,
    seq: u64,
    /// The check running now.
    pub check: &'static str,
    /// Snapshots attached to VMs (VM id, device id), detached by the sweep first.
    pub attachments: Vec<(String, String)>,
    /// What the systems held before the run.
    pub before: Option<Inventory>,
    /// What the final sweep could not remove.
    pub left_behind: Vec<String>,
    /// DNS records the run may have written (zone, name, kind), for the sweep.
    pub records: Vec<(String, String, RecordKind)>,
    host: Option<String>,
}

impl Cx {
    pub fn new(subject: &Subject) -> Self {
        let run = format!("tmc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Self {
            kind: subject.kind,
            subject: subject.side.clone(),
            array: subject.array.clone(),
            run,
            seq: 0,
            check: "",
            attachments: Vec::new(),
            before: None,
            left_behind: Vec::new(),
            records: Vec::new(),
            host: None,
        }
    }

    /// Starts a check.
    pub fn begin(&mut self, check: &'static str) {
        self.check = check;
    }

    /// Where LUNs come from: the subject itself when it is an array, else `--array`.
    pub fn array_side(&self) -> Option<&Side> {
        match self.kind {
            AdapterKind::StorageArray => Some(&self.subject),
            AdapterKind::Hypervisor => self.array.as_ref(),
            // The suite refuses other kinds before it runs.
            AdapterKind::Cloud | AdapterKind::Dns | AdapterKind::Machine => None,
        }
    }

    /// The hypervisor side, when the subject is one.
    pub fn hypervisor_side(&self) -> Option<&Side> {
        (self.kind == AdapterKind::Hypervisor).then_some(&self.subject)
    }

    /// A fresh session on the hypervisor under test.
    pub async fn hv(&self) -> Result<Box<dyn Hypervisor>, Why> {
        let side = self
            .hypervisor_side()
            .ok_or_else(|| Why::Fail("suite bug: no hypervisor under test".into()))?;
        side.endpoints
            .hypervisor(&side.name)
            .await
            .map_err(|e| Why::Fail(format!("opening a session on {}: {e:#}", side.label)))
    }

    /// A fresh session on the array (under test, or beside the hypervisor).
    pub async fn array(&self) -> Result<Box<dyn StorageArray>, Why> {
        let side = self
            .array_side()
            .ok_or_else(|| Why::Skip("no storage array given (--array)".into()))?;
        side.endpoints
            .storage_array(&side.name)
            .await
            .map_err(|e| Why::Fail(format!("opening a session on {}: {e:#}", side.label)))
    }

    /// A fresh session on the DNS adapter under test.
    pub async fn dns(&self) -> Result<Box<dyn Dns>, Why> {
        self.subject
            .endpoints
            .dns(&self.subject.name)
            .await
            .map_err(|e| {
                Why::Fail(format!(
                    "opening a session on {}: {e:#}",
                    self.subject.label
                ))
            })
    }

    /// A fresh session on the machine adapter under test.
    pub async fn machine(&self) -> Result<Box<dyn Machine>, Why> {
        self.subject
            .endpoints
            .machine(&self.subject.name)
            .await
            .map_err(|e| {
                Why::Fail(format!(
                    "opening a session on {}: {e:#}",
                    self.subject.label
                ))
            })
    }

    /// A fresh session on the adapter under test, whatever its kind.
    pub async fn sess(&self) -> Result<Sess, Why> {
        Ok(match self.kind {
            AdapterKind::StorageArray => Sess::A(self.array().await?),
            AdapterKind::Hypervisor => Sess::H(self.hv().await?),
            other => {
                return Err(Why::Fail(format!(
                    "the suite has no checks for {other} adapters"
                )));
            }
        })
    }

    /// A name for something the check creates: the run's prefix, so the sweep finds it.
    pub fn name(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("{}-{}-{what}", self.run, self.seq)
    }

    /// A token no call of this run used before.
    pub fn token(&mut self) -> String {
        self.seq += 1;
        format!("{}:{}:{}", self.run, self.check, self.seq)
    }

    /// Whether a name is one this run gave.
    pub fn ours(&self, name: &str) -> bool {
        name.starts_with(&format!("{}-", self.run))
    }

    /// The hypervisor host the suite puts VMs on and exposes LUNs to: the hypervisor's
    /// first host, or a fixed name when only an array is tested.
    pub async fn host(&mut self) -> Result<String, Why> {
        if let Some(host) = &self.host {
            return Ok(host.clone());
        }
        let host = match self.hypervisor_side() {
            None => "tidemark-conformance-host".to_string(),
            Some(_) => {
                let mut h = self.hv().await?;
                let hosts = h.list_hosts().await?;
                hosts
                    .first()
                    .map(|h| h.id.clone())
                    .ok_or_else(|| Why::Fail("list-hosts answered no host".into()))?
            }
        };
        self.host = Some(host.clone());
        Ok(host)
    }

    /// A new LUN of [`CAP`] bytes on the array.
    pub async fn new_lun(&mut self, a: &mut dyn StorageArray) -> Result<LunInfo, Why> {
        let (name, token) = (self.name("lun"), self.token());
        Ok(a.create_lun(&name, CAP, &token).await?)
    }

    /// A new VM on the first host with `disks` virtual disks of [`CAP`] bytes at `/t1`….
    pub async fn new_vm(&mut self, h: &mut dyn Hypervisor, disks: usize) -> Result<VmInfo, Why> {
        let host_id = self.host().await?;
        let spec = VmSpec {
            hardware: Default::default(),
            name: self.name("vm"),
            host_id,
            devices: (1..=disks)
                .map(|i| {
                    DeviceSpec::NewVirtualDisk(NewDisk {
                        capacity: CAP,
                        mount_point: format!("/t{i}"),
                    })
                })
                .collect(),
        };
        let token = self.token();
        Ok(h.create_vm(&spec, &token).await?)
    }

    /// `n` devices of the subject: LUNs of the array, or disks of one new VM.
    pub async fn devices(&mut self, s: &mut Sess, n: usize) -> Result<Vec<Dev>, Why> {
        match s {
            Sess::A(a) => {
                let mut devs = Vec::new();
                for _ in 0..n {
                    devs.push(Dev::Lun(self.new_lun(a.as_mut()).await?.wwn));
                }
                Ok(devs)
            }
            Sess::H(h) => {
                let vm = self.new_vm(h.as_mut(), n).await?;
                let disks: Vec<Dev> = vm
                    .devices
                    .iter()
                    .map(|d| Dev::Disk {
                        vm: vm.id.clone(),
                        id: d.id.clone(),
                    })
                    .collect();
                if disks.len() != n {
                    return Err(Why::Fail(format!(
                        "create-vm with {n} disks answered a VM with {} devices",
                        disks.len()
                    )));
                }
                Ok(disks)
            }
        }
    }

    /// One device of the subject.
    pub async fn device(&mut self, s: &mut Sess) -> Result<Dev, Why> {
        Ok(self.devices(s, 1).await?.remove(0))
    }
}
