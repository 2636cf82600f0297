//! Native tests on answers captured from sushy-tools 2.2.0 (`fixtures/`), through a fake
//! [`Io`] whose clock moves only when the adapter sleeps, so polling tests take no time.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};
use tidemark_sdk::http::Response;
use tidemark_sdk::{AdapterError, AdapterResult, BootDevice, Firmware, PowerState};

use crate::client::{Client, Io, Level};
use crate::power::{self, Goal};
use crate::settings::Settings;
use crate::{base64, boot, inventory, media, system};

const ORIGIN: &str = "http://bmc.test:8000";
const UUID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
const PASSWORD: &str = "bmc-pass-61c2e8";

fn sys_path() -> String {
    format!("/redfish/v1/Systems/{UUID}")
}

/// One request the fake saw: method, path, headers, body.
type Sent = (String, String, Vec<(String, String)>, Vec<u8>);

/// Answers per `METHOD path`, in order; the last one repeats.
#[derive(Default)]
struct Fake {
    routes: RefCell<HashMap<String, VecDeque<Response>>>,
    sent: RefCell<Vec<Sent>>,
    clock: Cell<u64>,
    logs: RefCell<Vec<(Level, String)>>,
}

fn answer(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.as_bytes().to_vec(),
    }
}

impl Fake {
    /// A BMC as sushy-tools answers with one fake system, Off.
    fn sushy() -> Fake {
        let fake = Fake {
            clock: Cell::new(1_000_000),
            ..Fake::default()
        };
        let s = sys_path();
        fake.on(
            "GET",
            "/redfish/v1/",
            200,
            include_str!("fixtures/service_root.json"),
        );
        fake.on(
            "GET",
            "/redfish/v1/Systems",
            200,
            include_str!("fixtures/systems.json"),
        );
        fake.on("GET", &s, 200, include_str!("fixtures/system.json"));
        fake.on(
            "GET",
            &format!("{s}/EthernetInterfaces"),
            200,
            include_str!("fixtures/ethernet_interfaces.json"),
        );
        fake.on(
            "GET",
            &format!("{s}/EthernetInterfaces/00:5c:52:31:3a:9c"),
            200,
            include_str!("fixtures/ethernet_interface.json"),
        );
        fake.on(
            "GET",
            &format!("{s}/Storage"),
            500,
            include_str!("fixtures/storage.json"),
        );
        fake.on(
            "GET",
            &format!("{s}/Processors"),
            501,
            include_str!("fixtures/processors_501.json"),
        );
        fake.on(
            "GET",
            &format!("{s}/VirtualMedia"),
            200,
            include_str!("fixtures/virtual_media.json"),
        );
        fake.on(
            "GET",
            &format!("{s}/VirtualMedia/Cd"),
            200,
            include_str!("fixtures/virtual_media_cd.json"),
        );
        fake.on("GET", &format!("{s}/VirtualMedia/Floppy"), 200, &floppy());
        fake.on(
            "GET",
            "/redfish/v1/Systems/no-such-system",
            404,
            include_str!("fixtures/not_found_404.json"),
        );
        fake.on(
            "POST",
            &format!("{s}/Actions/ComputerSystem.Reset"),
            204,
            "",
        );
        fake.on("PATCH", &s, 204, "");
        fake.on(
            "POST",
            &format!("{s}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia"),
            204,
            "",
        );
        fake.on(
            "POST",
            &format!("{s}/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia"),
            204,
            "",
        );
        fake
    }

    /// Replaces the answers to `METHOD path` with one.
    fn on(&self, method: &str, path: &str, status: u16, body: &str) {
        self.seq(method, path, vec![answer(status, body)]);
    }

    /// Replaces the answers to `METHOD path` with a sequence.
    fn seq(&self, method: &str, path: &str, answers: Vec<Response>) {
        self.routes
            .borrow_mut()
            .insert(format!("{method} {path}"), answers.into());
    }

    fn sent(&self, method: &str) -> Vec<(String, Value)> {
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.0 == method)
            .map(|r| {
                (
                    r.1.clone(),
                    serde_json::from_slice(&r.3).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    fn warnings(&self) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|l| l.0 == Level::Warn)
            .map(|l| l.1.clone())
            .collect()
    }
}

impl Io for Fake {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response> {
        let path = url.strip_prefix(ORIGIN).expect("a request off the BMC");
        self.sent.borrow_mut().push((
            method.into(),
            path.into(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body.to_vec(),
        ));
        let mut routes = self.routes.borrow_mut();
        let Some(answers) = routes.get_mut(&format!("{method} {path}")) else {
            return Ok(answer(
                404,
                include_str!("fixtures/manager_virtual_media.json"),
            ));
        };
        Ok(if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers[0].clone()
        })
    }
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }
    fn sleep_ms(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

fn settings(timeout: Option<&str>) -> Settings {
    let timeout = timeout.map(str::to_string);
    Settings::read(
        |k| match k {
            "url" => Some(format!("{ORIGIN}/")),
            "timeout" => timeout.clone(),
            _ => None,
        },
        |k| match k {
            "username" => Some("tidemark".into()),
            "password" => Some(PASSWORD.into()),
            _ => None,
        },
    )
    .unwrap()
}

fn client(fake: &Fake) -> Client<'_> {
    Client::new(settings(None), fake)
}

/// The captured system with `edit` applied.
fn system_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(include_str!("fixtures/system.json")).unwrap();
    edit(&mut v);
    v.to_string()
}

fn powered(state: &str) -> Response {
    answer(200, &system_with(|v| v["PowerState"] = json!(state)))
}

/// The captured CD device as a Floppy (sushy's second device).
fn floppy() -> String {
    let mut v: Value =
        serde_json::from_str(include_str!("fixtures/virtual_media_cd.json")).unwrap();
    v["Id"] = json!("Floppy");
    v["MediaTypes"] = json!(["Floppy", "USBStick"]);
    v["@odata.id"] = json!(format!("{}/VirtualMedia/Floppy", sys_path()));
    v.to_string()
}

fn kind(e: &AdapterError) -> &'static str {
    match e {
        AdapterError::NotFound(_) => "not-found",
        AdapterError::Conflict(_) => "conflict",
        AdapterError::Invalid(_) => "invalid",
        AdapterError::Unsupported(_) => "unsupported",
        AdapterError::Denied(_) => "denied",
        AdapterError::Transient(_) => "transient",
        AdapterError::Internal(_) => "internal",
    }
}

fn text(e: &AdapterError) -> String {
    match e {
        AdapterError::NotFound(m)
        | AdapterError::Conflict(m)
        | AdapterError::Invalid(m)
        | AdapterError::Unsupported(m)
        | AdapterError::Denied(m)
        | AdapterError::Transient(m)
        | AdapterError::Internal(m) => m.clone(),
    }
}

#[test]
fn base64_encodes_as_rfc_4648_says() {
    assert_eq!(base64::encode(b""), "");
    assert_eq!(base64::encode(b"f"), "Zg==");
    assert_eq!(base64::encode(b"fo"), "Zm8=");
    assert_eq!(base64::encode(b"foo"), "Zm9v");
    assert_eq!(base64::encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(
        base64::encode(b"tidemark:bmc-pass-61c2e8"),
        "dGlkZW1hcms6Ym1jLXBhc3MtNjFjMmU4"
    );
}

#[test]
fn settings_name_the_missing_or_malformed_key_and_hide_the_password() {
    let none = |_: &str| None;
    let e = Settings::read(none, none).unwrap_err();
    assert!(kind(&e) == "invalid" && text(&e).contains("'url'"), "{e:?}");
    let e = Settings::read(
        |k| match k {
            "url" => Some(ORIGIN.into()),
            "timeout" => Some("soon".into()),
            _ => None,
        },
        |_| Some("x".into()),
    )
    .unwrap_err();
    assert!(
        kind(&e) == "invalid" && text(&e).contains("'timeout'"),
        "{e:?}"
    );
    let e = Settings::read(|k| (k == "url").then(|| ORIGIN.into()), none).unwrap_err();
    assert!(text(&e).contains("'username'"), "{e:?}");
    let s = settings(Some("60"));
    assert_eq!(s.power_wait_ms, 59_000);
    assert_eq!(s.service_root, format!("{ORIGIN}/redfish/v1/"));
    assert!(!format!("{s:?}").contains("Basic"));
}

#[test]
fn machines_are_the_last_segments_of_the_systems_members() {
    let fake = Fake::sushy();
    assert_eq!(
        system::list(&client(&fake)).unwrap(),
        vec![UUID.to_string()]
    );
    let (_, path, headers, _) = fake.sent.borrow()[0].clone();
    assert_eq!(path, "/redfish/v1/");
    assert!(headers.contains(&(
        "authorization".into(),
        "Basic dGlkZW1hcms6Ym1jLXBhc3MtNjFjMmU4".into()
    )));
}

#[test]
fn sushy_inventory_leaves_what_it_does_not_report_unknown() {
    let fake = Fake::sushy();
    let inv = inventory::get(&client(&fake), UUID).unwrap();
    assert_eq!(inv.name.as_deref(), Some("fake"));
    assert_eq!(inv.manufacturer.as_deref(), Some("Sushy Emulator"));
    assert_eq!(inv.model, None);
    assert_eq!(inv.serial, None);
    assert!(
        inv.cpus.is_none(),
        "status-only ProcessorSummary and 501 Processors"
    );
    assert_eq!(inv.memory, None, "status-only MemorySummary");
    assert!(
        inv.disks.is_none(),
        "Storage answers 500 when none is configured"
    );
    assert_eq!(inv.power, Some(PowerState::Off));
    assert_eq!(inv.firmware, Some(Firmware::Uefi));
    let nics = inv.nics.unwrap();
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0].mac.as_deref(), Some("00:5c:52:31:3a:9c"));
    assert_eq!(nics[0].speed_mbps, None);
}

#[test]
fn reported_counts_sizes_and_drives_are_mapped() {
    let fake = Fake::sushy();
    let s = sys_path();
    fake.on(
        "GET",
        &s,
        200,
        &system_with(|v| {
            v["ProcessorSummary"] = json!({"Count": 2, "Model": "Xeon"});
            v["MemorySummary"] = json!({"TotalSystemMemoryGiB": 8});
            v["SerialNumber"] = json!("SN-1");
            v["PowerState"] = json!("PoweringOn");
        }),
    );
    fake.on(
        "GET",
        &format!("{s}/Storage"),
        200,
        &json!({"Members": [{"@odata.id": format!("{s}/Storage/1")}]}).to_string(),
    );
    fake.on(
        "GET",
        &format!("{s}/Storage/1"),
        200,
        &json!({"Drives": [{"@odata.id": format!("{s}/Storage/1/Drives/d0")}]}).to_string(),
    );
    fake.on(
        "GET",
        &format!("{s}/Storage/1/Drives/d0"),
        200,
        &json!({"Id": "d0", "CapacityBytes": 1_000_000_000u64, "Model": "QEMU"}).to_string(),
    );
    fake.on(
        "GET",
        &format!("{s}/EthernetInterfaces/00:5c:52:31:3a:9c"),
        200,
        &json!({"Id": "n0", "MACAddress": null, "PermanentMACAddress": "00-5C-52-31-3A-9C", "SpeedMbps": 1000}).to_string(),
    );
    let inv = inventory::get(&client(&fake), UUID).unwrap();
    let cpus = inv.cpus.unwrap();
    assert_eq!(cpus.len(), 2);
    assert_eq!(cpus[0].model.as_deref(), Some("Xeon"));
    assert_eq!(cpus[0].cores, None);
    assert_eq!(inv.memory, Some(8 << 30));
    assert_eq!(inv.serial.as_deref(), Some("SN-1"));
    assert_eq!(inv.power, None, "a transitional state is unknown");
    let disks = inv.disks.unwrap();
    assert_eq!(disks[0].capacity, Some(1_000_000_000));
    assert_eq!(disks[0].model.as_deref(), Some("QEMU"));
    let nics = inv.nics.unwrap();
    assert_eq!(nics[0].mac.as_deref(), Some("00:5c:52:31:3a:9c"));
    assert_eq!(nics[0].speed_mbps, Some(1000));
}

#[test]
fn zero_counts_are_unknown_not_zero() {
    let fake = Fake::sushy();
    fake.on(
        "GET",
        &sys_path(),
        200,
        &system_with(|v| {
            v["ProcessorSummary"] = json!({"Count": 0});
            v["MemorySummary"] = json!({"TotalSystemMemoryGiB": 0});
        }),
    );
    let inv = inventory::get(&client(&fake), UUID).unwrap();
    assert!(inv.cpus.is_none() && inv.memory.is_none());
}

#[test]
fn macs_are_normalised_or_unknown() {
    assert_eq!(
        inventory::mac("00:5C:52:31:3A:9C").as_deref(),
        Some("00:5c:52:31:3a:9c")
    );
    assert_eq!(
        inventory::mac("005c52313a9c").as_deref(),
        Some("00:5c:52:31:3a:9c")
    );
    assert_eq!(inventory::mac("not a mac"), None);
    assert_eq!(inventory::mac("00:00:00:00:00:00"), None);
}

#[test]
fn reset_types_are_chosen_among_the_allowed_ones() {
    let sushy: Vec<String> = [
        "On",
        "ForceOff",
        "GracefulShutdown",
        "GracefulRestart",
        "ForceRestart",
        "Nmi",
        "ForceOn",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        power::choose(Some(&sushy), &["On", "ForceOn"]).as_deref(),
        Some("On")
    );
    let only_force_on = vec!["ForceOn".to_string(), "ForceOff".to_string()];
    assert_eq!(
        power::choose(Some(&only_force_on), &["On", "ForceOn"]).as_deref(),
        Some("ForceOn")
    );
    assert_eq!(
        power::choose(Some(&only_force_on), &["GracefulShutdown"]),
        None
    );
    assert_eq!(
        power::choose(None, &["ForceOff"]).as_deref(),
        Some("ForceOff")
    );
}

#[test]
fn power_on_posts_the_reset_and_polls_until_on() {
    let fake = Fake::sushy();
    let s = sys_path();
    fake.seq(
        "GET",
        &s,
        vec![
            powered("Off"),
            powered("Off"),
            powered("Off"),
            powered("On"),
        ],
    );
    let started = fake.clock.get();
    power::act(&client(&fake), UUID, Goal::On).unwrap();
    let posts = fake.sent("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, format!("{s}/Actions/ComputerSystem.Reset"));
    assert_eq!(posts[0].1, json!({"ResetType": "On"}));
    assert_eq!(fake.clock.get() - started, 3 * power::POLL_MS);
}

#[test]
fn power_off_forced_and_graceful_pick_their_types() {
    for (force, wanted) in [(true, "ForceOff"), (false, "GracefulShutdown")] {
        let fake = Fake::sushy();
        fake.seq("GET", &sys_path(), vec![powered("On"), powered("Off")]);
        power::act(&client(&fake), UUID, Goal::Off { force }).unwrap();
        assert_eq!(fake.sent("POST")[0].1, json!({"ResetType": wanted}));
    }
}

#[test]
fn a_machine_already_in_the_state_is_left_alone() {
    let fake = Fake::sushy();
    power::act(&client(&fake), UUID, Goal::Off { force: true }).unwrap();
    fake.on(
        "GET",
        &sys_path(),
        200,
        &system_with(|v| v["PowerState"] = json!("On")),
    );
    power::act(&client(&fake), UUID, Goal::On).unwrap();
    assert!(fake.sent("POST").is_empty());
}

#[test]
fn a_state_never_reached_is_a_transient_error_naming_it() {
    let fake = Fake::sushy();
    let c = Client::new(settings(Some("5s")), &fake);
    let e = power::act(&c, UUID, Goal::On).unwrap_err();
    assert_eq!(kind(&e), "transient", "{e:?}");
    let m = text(&e);
    assert!(
        m.contains("still Off") && m.contains(UUID) && m.contains("On"),
        "{m}"
    );
    assert!(fake.clock.get() - 1_000_000 <= 4_000 + power::POLL_MS);
}

#[test]
fn reset_waits_through_off_back_to_on() {
    let fake = Fake::sushy();
    fake.seq(
        "GET",
        &sys_path(),
        vec![powered("On"), powered("Off"), powered("Off"), powered("On")],
    );
    power::act(&client(&fake), UUID, Goal::Reset).unwrap();
    assert_eq!(fake.sent("POST")[0].1, json!({"ResetType": "ForceRestart"}));
    assert_eq!(
        fake.sent("GET")
            .iter()
            .filter(|g| g.0 == sys_path())
            .count(),
        4
    );
}

#[test]
fn reset_of_a_machine_that_is_off_powers_it_on() {
    let fake = Fake::sushy();
    fake.seq("GET", &sys_path(), vec![powered("Off"), powered("On")]);
    power::act(&client(&fake), UUID, Goal::Reset).unwrap();
    assert_eq!(fake.sent("POST")[0].1, json!({"ResetType": "On"}));
}

#[test]
fn a_reset_type_the_bmc_refuses_is_unsupported() {
    let fake = Fake::sushy();
    fake.on(
        "GET",
        &sys_path(),
        200,
        &system_with(|v| {
            v["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"] =
                json!(["ForceOff", "Nmi"])
        }),
    );
    let e = power::act(&client(&fake), UUID, Goal::On).unwrap_err();
    assert_eq!(kind(&e), "unsupported", "{e:?}");
    assert!(text(&e).contains("ForceOff, Nmi"));
    fake.on(
        "GET",
        &sys_path(),
        200,
        include_str!("fixtures/system.json"),
    );
    fake.on(
        "POST",
        &format!("{}/Actions/ComputerSystem.Reset", sys_path()),
        501,
        include_str!("fixtures/reset_nmi_501.json"),
    );
    let e = power::act(&client(&fake), UUID, Goal::On).unwrap_err();
    assert_eq!(kind(&e), "unsupported", "{e:?}");
    assert!(text(&e).contains("not supported"), "{e:?}");
}

#[test]
fn boot_targets_the_bmc_does_not_allow_are_refused_before_patching() {
    let fake = Fake::sushy();
    let e = boot::set(&client(&fake), UUID, BootDevice::Usb, true).unwrap_err();
    assert_eq!(kind(&e), "invalid", "{e:?}");
    let m = text(&e);
    assert!(
        m.contains("usb") && m.contains("Pxe, Cd, Hdd, UefiHttp"),
        "{m}"
    );
    assert!(fake.sent("PATCH").is_empty());
}

#[test]
fn boot_override_is_patched_and_read_back() {
    let fake = Fake::sushy();
    fake.seq(
        "GET",
        &sys_path(),
        vec![
            answer(200, include_str!("fixtures/system.json")),
            // What sushy answers after PATCH Cd/Once: the target kept, Enabled Continuous.
            answer(
                200,
                &system_with(|v| v["Boot"]["BootSourceOverrideTarget"] = json!("Cd")),
            ),
        ],
    );
    boot::set(&client(&fake), UUID, BootDevice::Cd, true).unwrap();
    let patches = fake.sent("PATCH");
    assert_eq!(
        patches[0].1,
        json!({"Boot": {"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once"}})
    );
    let warnings = fake.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Once") && w.contains("Continuous")),
        "{warnings:?}"
    );
}

#[test]
fn a_boot_target_not_kept_is_an_error() {
    let fake = Fake::sushy();
    // The captured system reports Hdd before and after: the PATCH did nothing.
    let e = boot::set(&client(&fake), UUID, BootDevice::Pxe, false).unwrap_err();
    assert_eq!(kind(&e), "internal", "{e:?}");
    assert!(
        text(&e).contains("Pxe") && text(&e).contains("Hdd"),
        "{e:?}"
    );
}

#[test]
fn boot_none_clears_the_override_even_if_not_listed() {
    let fake = Fake::sushy();
    fake.seq(
        "GET",
        &sys_path(),
        vec![
            answer(200, include_str!("fixtures/system.json")),
            answer(
                200,
                &system_with(|v| v["Boot"]["BootSourceOverrideTarget"] = json!("None")),
            ),
        ],
    );
    boot::set(&client(&fake), UUID, BootDevice::None, false).unwrap();
    assert_eq!(
        fake.sent("PATCH")[0].1,
        json!({"Boot": {"BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled"}})
    );
}

#[test]
fn media_goes_to_the_cd_device_and_is_read_back() {
    let fake = Fake::sushy();
    let s = sys_path();
    // Floppy listed first: the CD device is still the one chosen.
    fake.on(
        "GET",
        &format!("{s}/VirtualMedia"),
        200,
        &json!({"Members": [
            {"@odata.id": format!("{s}/VirtualMedia/Floppy")},
            {"@odata.id": format!("{s}/VirtualMedia/Cd")},
        ]})
        .to_string(),
    );
    let url = "http://127.0.0.1:18732/t.iso";
    fake.seq(
        "GET",
        &format!("{s}/VirtualMedia/Cd"),
        vec![
            answer(200, include_str!("fixtures/virtual_media_cd.json")),
            answer(200, include_str!("fixtures/virtual_media_cd_inserted.json")),
        ],
    );
    media::insert(&client(&fake), UUID, url).unwrap();
    let posts = fake.sent("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].0,
        format!("{s}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia")
    );
    assert_eq!(
        posts[0].1,
        json!({"Image": url, "Inserted": true, "WriteProtected": true})
    );
    // Inserted now: inserting again ejects first; ejecting an empty device sends nothing.
    let fake = Fake::sushy();
    fake.on(
        "GET",
        &format!("{s}/VirtualMedia/Cd"),
        200,
        include_str!("fixtures/virtual_media_cd.json"),
    );
    media::eject(&client(&fake), UUID).unwrap();
    assert!(fake.sent("POST").is_empty());
}

#[test]
fn media_the_bmc_does_not_keep_is_an_error() {
    let fake = Fake::sushy();
    let e = media::insert(&client(&fake), UUID, "http://127.0.0.1:1/x.iso").unwrap_err();
    assert_eq!(kind(&e), "internal", "{e:?}");
    let fake = Fake::sushy();
    fake.on(
        "POST",
        &format!(
            "{}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
            sys_path()
        ),
        500,
        include_str!("fixtures/insert_unreachable_500.json"),
    );
    let e = media::insert(&client(&fake), UUID, "http://127.0.0.1:1/x.iso").unwrap_err();
    assert_eq!(kind(&e), "transient", "{e:?}");
    assert!(text(&e).contains("Failed fetching image"), "{e:?}");
}

#[test]
fn media_urls_are_checked_before_the_bmc_sees_them() {
    for url in [
        "",
        "not a url",
        "file:///etc/passwd",
        "http://",
        "http://host/a b.iso",
        "http://host/\n",
    ] {
        let e = media::check_url(url).unwrap_err();
        assert_eq!(kind(&e), "invalid", "{url:?}");
    }
    media::check_url("https://images.example/restore.iso?x=1").unwrap();
}

#[test]
fn no_cd_device_is_unsupported() {
    let fake = Fake::sushy();
    let s = sys_path();
    fake.on(
        "GET",
        &format!("{s}/VirtualMedia"),
        200,
        &json!({"Members": [{"@odata.id": format!("{s}/VirtualMedia/Floppy")}]}).to_string(),
    );
    let e = media::eject(&client(&fake), UUID).unwrap_err();
    assert_eq!(kind(&e), "unsupported");
    assert!(text(&e).contains("Floppy (Floppy, USBStick)"), "{e:?}");
}

#[test]
fn refused_credentials_are_denied_without_the_password() {
    let fake = Fake::sushy();
    fake.on(
        "GET",
        "/redfish/v1/Systems",
        401,
        include_str!("fixtures/unauthorized_401.json"),
    );
    let e = system::list(&client(&fake)).unwrap_err();
    assert_eq!(kind(&e), "denied");
    assert!(!text(&e).contains(PASSWORD) && !text(&e).contains("tidemark:"));
}

#[test]
fn an_unknown_machine_is_not_found_naming_it() {
    let fake = Fake::sushy();
    let e = inventory::get(&client(&fake), "no-such-system").unwrap_err();
    assert_eq!(kind(&e), "not-found");
    assert!(text(&e).contains("no-such-system"));
    let e = power::act(&client(&fake), "../x", Goal::On).unwrap_err();
    assert_eq!(kind(&e), "not-found");
    assert!(fake.sent("POST").is_empty());
}

#[test]
fn server_errors_are_transient_with_the_redfish_message() {
    let fake = Fake::sushy();
    fake.on(
        "GET",
        &sys_path(),
        503,
        include_str!("fixtures/storage.json"),
    );
    let e = inventory::get(&client(&fake), UUID).unwrap_err();
    assert_eq!(kind(&e), "transient");
    assert!(
        text(&e).contains("Error finding storage collection"),
        "{e:?}"
    );
}

#[test]
fn garbage_json_is_an_error_naming_the_resource() {
    let fake = Fake::sushy();
    fake.on("GET", &sys_path(), 200, "<html>not json</html>");
    let e = inventory::get(&client(&fake), UUID).unwrap_err();
    assert_eq!(kind(&e), "internal");
    assert!(text(&e).contains(&sys_path()) && text(&e).contains("malformed JSON"));
    // A wrong-typed field is unknown, not a failure.
    fake.on(
        "GET",
        &sys_path(),
        200,
        &system_with(|v| v["MemorySummary"]["TotalSystemMemoryGiB"] = json!("lots")),
    );
    assert_eq!(inventory::get(&client(&fake), UUID).unwrap().memory, None);
    // A garbled optional sub-resource is not reported, with a warning.
    fake.on(
        "GET",
        &format!("{}/EthernetInterfaces", sys_path()),
        200,
        "{",
    );
    assert!(inventory::get(&client(&fake), UUID).unwrap().nics.is_none());
    assert!(!fake.warnings().is_empty());
}

#[test]
fn redirects_are_followed_on_the_bmc_only() {
    let fake = Fake::sushy();
    let mut moved = answer(307, "<html>Redirecting...</html>");
    moved
        .headers
        .push(("location".into(), sys_path().into_bytes()));
    fake.seq("GET", "/redfish/v1/Systems/fake", vec![moved]);
    let inv = inventory::get(&client(&fake), "fake").unwrap();
    assert_eq!(inv.name.as_deref(), Some("fake"));

    let mut away = answer(307, "");
    away.headers
        .push(("location".into(), b"http://elsewhere.test/steal".to_vec()));
    fake.seq("GET", "/redfish/v1/Systems/fake", vec![away]);
    let e = inventory::get(&client(&fake), "fake").unwrap_err();
    assert_eq!(kind(&e), "internal");
    assert!(text(&e).contains("elsewhere.test"));
}

/// The whole adapter against a real BMC (sushy-tools as in `tests/e2e/redfish.rs`) when
/// `REDFISH_LIVE_URL`, `REDFISH_LIVE_USER`, `REDFISH_LIVE_PASSWORD` and `REDFISH_LIVE_MEDIA`
/// (an image URL the BMC can fetch) are set; skipped otherwise.
#[test]
fn against_a_live_bmc() {
    let Ok(url) = std::env::var("REDFISH_LIVE_URL") else {
        return;
    };
    let env = |k: &str| std::env::var(k).ok();
    let settings = Settings::read(
        |k| (k == "url").then(|| url.clone()),
        |k| match k {
            "username" => env("REDFISH_LIVE_USER"),
            "password" => env("REDFISH_LIVE_PASSWORD"),
            _ => None,
        },
    )
    .unwrap();
    let c = Client::new(settings, &tidemark_sdk::http::StdIo);
    let ids = system::list(&c).unwrap();
    let id = &ids[0];
    eprintln!("{:?}", inventory::get(&c, id).unwrap());
    assert_eq!(
        kind(&inventory::get(&c, "no-such-system").unwrap_err()),
        "not-found"
    );
    power::act(&c, id, Goal::Off { force: true }).unwrap();
    assert_eq!(inventory::get(&c, id).unwrap().power, Some(PowerState::Off));
    power::act(&c, id, Goal::On).unwrap();
    power::act(&c, id, Goal::On).unwrap();
    assert_eq!(inventory::get(&c, id).unwrap().power, Some(PowerState::On));
    power::act(&c, id, Goal::Reset).unwrap();
    assert_eq!(inventory::get(&c, id).unwrap().power, Some(PowerState::On));
    boot::set(&c, id, BootDevice::Cd, true).unwrap();
    boot::set(&c, id, BootDevice::None, false).unwrap();
    assert_eq!(
        kind(&boot::set(&c, id, BootDevice::Usb, true).unwrap_err()),
        "invalid"
    );
    let media_url = env("REDFISH_LIVE_MEDIA").unwrap();
    media::insert(&c, id, &media_url).unwrap();
    media::insert(&c, id, &media_url).unwrap();
    media::eject(&c, id).unwrap();
    media::eject(&c, id).unwrap();
    // By name: sushy answers 307 to the UUID.
    assert!(inventory::get(&c, "fake").is_ok());
    power::act(&c, id, Goal::Off { force: true }).unwrap();
}
