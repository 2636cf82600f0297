//! One libvirt connection per contract call: open, work, close. Errors become the
//! contract's, naming the daemon's address and what was being done.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::TcpStream;

use libvirt_rpc::{Client, Domain, Error, StoragePool, StorageVol, Uuid, codes, flags};
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::settings::Settings;

/// `VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE`.
const POOLS_ACTIVE: u32 = 1 << 1;

/// An open connection and the settings it was opened with.
pub struct Conn {
    pub client: Client<TcpStream>,
    pub settings: Settings,
    /// Dropped without `connect_close`: the daemon's own clean-up of an `AUTODESTROY`
    /// domain then runs after the adapter has returned, not inside the close (where it
    /// waits over a second for a QEMU that is already going).
    pub abandoned: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.abandoned {
            let _ = self.client.connect_close();
        }
    }
}

impl Conn {
    /// Reads the settings and connects.
    pub fn open() -> AdapterResult<Conn> {
        let settings = Settings::read()?;
        let stream = tidemark_sdk::net::connect(&settings.libvirt, settings.timeout).map_err(
            |e| match e {
                AdapterError::Transient(m) => {
                    AdapterError::Transient(format!("libvirtd at {}: {m}", settings.libvirt))
                }
                other => other,
            },
        )?;
        let _ = stream.set_read_timeout(Some(settings.timeout));
        let _ = stream.set_write_timeout(Some(settings.timeout));
        let client = Client::open(stream, &settings.uri).map_err(|e| {
            map_error(
                e,
                &settings.libvirt,
                &format!("connecting and opening {}", settings.uri),
            )
        })?;
        Ok(Conn {
            client,
            settings,
            abandoned: false,
        })
    }

    /// Maps a libvirt error of `what`.
    pub fn err(&self, what: &str) -> impl Fn(Error) -> AdapterError + '_ {
        let what = what.to_string();
        move |e| map_error(e, &self.settings.libvirt, &what)
    }

    /// The domain with UUID `vm_id`: `not-found` for anything else (garbage included).
    pub fn domain(&mut self, vm_id: &str) -> AdapterResult<Domain> {
        let not_found =
            || AdapterError::NotFound(format!("no VM (libvirt domain) with id {vm_id:?}"));
        let uuid = Uuid::parse(vm_id).ok_or_else(not_found)?;
        match self.client.domain_lookup_by_uuid(&uuid) {
            Ok(dom) => Ok(dom),
            Err(e) if e.is(codes::NO_DOMAIN) => Err(not_found()),
            Err(e) => Err(map_error(e, &self.settings.libvirt, "looking up a domain")),
        }
    }

    /// The domain's persistent definition (its live one if it has none), secure fields too.
    pub fn definition(&mut self, dom: &Domain) -> AdapterResult<String> {
        let what = format!("reading the XML of domain {}", dom.name);
        self.client
            .domain_get_xml_desc(dom, flags::xml::INACTIVE | flags::xml::SECURE)
            .map_err(|e| map_error(e, &self.settings.libvirt, &what))
    }

    /// Whether the domain is running or paused.
    /// The running domain's live definition (what QEMU has now: sources after a live
    /// snapshot, each with libvirt's node `index`).
    pub fn live(&mut self, dom: &Domain) -> AdapterResult<crate::xml::Definition> {
        let what = format!("reading the live XML of domain {}", dom.name);
        let text = self
            .client
            .domain_get_xml_desc(dom, 0)
            .map_err(|e| map_error(e, &self.settings.libvirt, &what))?;
        crate::xml::Definition::parse(&dom.name, &text)
    }

    /// Every domain (a running one has an id other than -1).
    pub fn domains(&mut self) -> AdapterResult<Vec<Domain>> {
        self.client
            .list_all_domains(0)
            .map_err(|e| map_error(e, &self.settings.libvirt, "listing domains"))
    }

    pub fn is_on(&mut self, dom: &Domain) -> AdapterResult<bool> {
        let what = format!("reading the state of domain {}", dom.name);
        let (state, _) = self
            .client
            .domain_get_state(dom)
            .map_err(|e| map_error(e, &self.settings.libvirt, &what))?;
        use libvirt_rpc::DomainState as S;
        Ok(matches!(state, S::Running | S::Paused | S::Blocked))
    }

    /// Every volume of every pool, by path (its key in `dir` pools).
    pub fn volumes(&mut self) -> AdapterResult<BTreeMap<String, StorageVol>> {
        let pools = self
            .client
            .list_all_storage_pools(POOLS_ACTIVE)
            .map_err(|e| map_error(e, &self.settings.libvirt, "listing storage pools"))?;
        let mut all = BTreeMap::new();
        for pool in pools {
            match self.client.list_all_volumes(&pool) {
                Ok(vols) => {
                    for v in vols {
                        all.insert(v.key.clone(), v);
                    }
                }
                // A pool stopped or removed meanwhile.
                Err(e) if e.is(codes::NO_STORAGE_POOL) || e.is(codes::OPERATION_INVALID) => {}
                Err(e) => {
                    return Err(map_error(
                        e,
                        &self.settings.libvirt,
                        &format!("listing the volumes of pool {}", pool.name),
                    ));
                }
            }
        }
        Ok(all)
    }

    /// The endpoint's pool, defined (from `pool-path`) and started if need be.
    pub fn pool(&mut self) -> AdapterResult<StoragePool> {
        let name = self.settings.pool.clone();
        let addr = self.settings.libvirt.clone();
        let pool = match self.client.storage_pool_lookup_by_name(&name) {
            Ok(pool) => pool,
            Err(e) if e.is(codes::NO_STORAGE_POOL) => {
                let Some(path) = self.settings.pool_path.clone() else {
                    return Err(AdapterError::Invalid(format!(
                        "endpoint setting 'pool' names pool {name}, which libvirtd at {addr} \
                         does not have, and setting 'pool-path' is not set to define it"
                    )));
                };
                let xml = format!(
                    "<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>",
                    crate::xml::esc(&name),
                    crate::xml::esc(&path)
                );
                tidemark_sdk::log::info(&format!("defining storage pool {name} at {path}"));
                self.client.storage_pool_define_xml(&xml, 0).map_err(|e| {
                    AdapterError::Invalid(format!(
                        "endpoint setting 'pool-path' ({path}): libvirtd at {addr} cannot \
                         define pool {name} there: {e}"
                    ))
                })?
            }
            Err(e) => return Err(map_error(e, &addr, &format!("looking up pool {name}"))),
        };
        let active = self
            .client
            .list_all_storage_pools(POOLS_ACTIVE)
            .map_err(|e| map_error(e, &addr, "listing storage pools"))?;
        if !active.iter().any(|p| p.uuid == pool.uuid) {
            self.client.storage_pool_create(&pool, 0).map_err(|e| {
                AdapterError::Invalid(format!(
                    "endpoint setting 'pool' ({name}): libvirtd at {addr} cannot start the \
                     pool (does its directory exist?): {e}"
                ))
            })?;
        }
        Ok(pool)
    }
}

/// libvirt's answers as the contract's errors.
pub fn map_error(e: Error, addr: &str, what: &str) -> AdapterError {
    let text = match &e {
        // A socket timeout reads as "resource temporarily unavailable" on WASI.
        Error::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            format!(
                "libvirtd at {addr}, {what}: no answer within the endpoint's call deadline \
                 (setting 'timeout')"
            )
        }
        _ => format!("libvirtd at {addr}, {what}: {e}"),
    };
    match &e {
        Error::Io(_) | Error::Broken(_) => AdapterError::Transient(text),
        Error::Protocol(_) => AdapterError::Internal(text),
        Error::Invalid(_) => AdapterError::Internal(text),
        Error::Libvirt(r) => match r.code {
            codes::NO_DOMAIN
            | codes::NO_STORAGE_POOL
            | codes::NO_STORAGE_VOL
            | codes::NO_DOMAIN_SNAPSHOT
            | codes::NO_DOMAIN_CHECKPOINT => AdapterError::NotFound(text),
            codes::DOM_EXIST | codes::STORAGE_VOL_EXIST | codes::OPERATION_INVALID => {
                AdapterError::Conflict(text)
            }
            codes::NO_SUPPORT
            | codes::OPERATION_UNSUPPORTED
            | codes::ARGUMENT_UNSUPPORTED
            | codes::CONFIG_UNSUPPORTED => AdapterError::Unsupported(text),
            codes::ACCESS_DENIED | codes::OPERATION_DENIED => AdapterError::Denied(text),
            codes::OPERATION_TIMEOUT | codes::RESOURCE_BUSY | codes::RPC => {
                AdapterError::Transient(text)
            }
            _ => AdapterError::Internal(text),
        },
    }
}
