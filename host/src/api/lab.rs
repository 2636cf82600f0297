//! The lab's guest data path over the API: `PUT|GET /v1/lab/vms/{vm}/devices/{mount}`
//! `?offset=&length=` write or read bytes of a VM's device as its guest would (`tidemark
//! lab write` / `lab read`), so those commands are API calls like every other. Bodies
//! stream through in [`IO_CHUNK`] pieces and are never held whole, which is why these two
//! routes are exempt from `body_limit` (a device image is gigabytes). Both need `operator`:
//! the bytes are the guest's data.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::engine::device_io::{self, DeviceTarget, IO_CHUNK};
use crate::engine::ports::{DataPath, ReaderHandle, WriterHandle};

/// Which bytes of the device: `length` bytes from `offset`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByteRange {
    /// Where the bytes start on the device.
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    offset: u64,
    /// How many bytes: the body's length for a write, the answer's for a read.
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    length: u64,
}

/// The device of `vm` at `mount` and who serves its bytes, once the range is known to fit:
/// an unknown VM or mount point is a 404, a range past the device's end a 422.
async fn device(
    state: &ApiState,
    vm: &str,
    mount: &str,
    range: &ByteRange,
) -> Result<DeviceTarget, ApiError> {
    let record = state
        .data
        .catalog
        .vm(vm)
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(format!("unknown VM '{vm}' (see `tidemark vm list`)"))
        })?;
    let Some(device) = record.devices.iter().find(|d| d.mount_point == mount) else {
        let mounts: Vec<&str> = record
            .devices
            .iter()
            .map(|d| d.mount_point.as_str())
            .collect();
        return Err(ApiError::not_found(format!(
            "VM {vm} has no device at {mount} (it has: {})",
            mounts.join(", ")
        )));
    };
    if range
        .offset
        .checked_add(range.length)
        .is_none_or(|end| end > device.capacity)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "{} bytes at offset {} are past the end of {vm} {mount} ({} bytes)",
                range.length, range.offset, device.capacity
            ),
        ));
    }
    device_io::locate(&state.data.catalog, state.data.endpoints(), &record, mount)
        .await
        .map_err(ApiError::refused)
}

/// 422 for a body whose size is not the `length` asked for.
fn wrong_length(got: impl std::fmt::Display, length: u64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        format!("the body holds {got} bytes but length is {length}"),
    )
}

/// `PUT /v1/lab/vms/{vm}/devices/{mount}?offset=&length=`: writes the body (exactly
/// `length` bytes) at `offset`, as the guest would, and flushes.
#[utoipa::path(put, path = "/v1/lab/vms/{vm}/devices/{mount}", operation_id = "write_lab_device",
    params(
        ("vm" = String, Path, description = "Tidemark's name of the VM"),
        ("mount" = String, Path, description = "The device's mount point, percent-encoded (`C:`, `%2Fdata`)"),
        ByteRange,
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The bytes to write: exactly `length` of them (not limited by `body_limit`)"),
    responses(
        (status = 200, description = "`vm`, `mount_point`, `offset` and `bytes` written", body = Object),
        (status = 400, description = "Malformed offset or length, or the body could not be read", body = ErrorBody),
        (status = 404, description = "No VM of that name, or no device at that mount point", body = ErrorBody),
        (status = 422, description = "The range is past the device's end, or the body's size is not `length`", body = ErrorBody),
    ))]
pub async fn write_device(
    State(state): State<Arc<ApiState>>,
    at: Result<Path<(String, String)>, PathRejection>,
    range: Result<Query<ByteRange>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((vm, mount)) = at?;
    let Query(range) = range?;
    let target = device(&state, &vm, &mount, &range).await?;
    // A declared size that differs is refused before a byte is written.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared != range.length
    {
        return Err(wrong_length(declared, range.length));
    }
    let (mut session, writer) = device_io::open_writer(state.data.endpoints(), &target)
        .await
        .map_err(ApiError::internal)?;
    let mut frames = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::with_capacity(IO_CHUNK.min(range.length as usize));
    let (mut at, mut received) = (range.offset, 0u64);
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("reading the body: {e}"),
            )
        })?;
        received += frame.len() as u64;
        if received > range.length {
            return Err(wrong_length(
                format!("more than {}", range.length),
                range.length,
            ));
        }
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let take = (IO_CHUNK - pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() == IO_CHUNK {
                write_at(session.as_mut(), &writer, at, &pending).await?;
                at += pending.len() as u64;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        write_at(session.as_mut(), &writer, at, &pending).await?;
    }
    if received != range.length {
        return Err(wrong_length(received, range.length));
    }
    session
        .flush(&writer)
        .await
        .map_err(|e| ApiError::internal(e.into()))?;
    session
        .close_writer(writer)
        .await
        .map_err(|e| ApiError::internal(e.into()))?;
    Ok(Json(json!({
        "vm": vm, "mount_point": mount, "offset": range.offset, "bytes": received,
    }))
    .into_response())
}

/// One data-path write, its failure the host's (the range was checked before).
async fn write_at(
    session: &mut dyn DataPath,
    writer: &WriterHandle,
    at: u64,
    data: &[u8],
) -> Result<(), ApiError> {
    session
        .write(writer, at, data)
        .await
        .map_err(|e| ApiError::internal(anyhow::Error::from(e).context(format!("writing at {at}"))))
}

/// `GET /v1/lab/vms/{vm}/devices/{mount}?offset=&length=`: the `length` bytes at `offset`,
/// as the guest would read them, streamed as they are read.
#[utoipa::path(get, path = "/v1/lab/vms/{vm}/devices/{mount}", operation_id = "read_lab_device",
    params(
        ("vm" = String, Path, description = "Tidemark's name of the VM"),
        ("mount" = String, Path, description = "The device's mount point, percent-encoded (`C:`, `%2Fdata`)"),
        ByteRange,
    ),
    responses(
        (status = 200, description = "Exactly `length` bytes (a failure part-way ends the connection early)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Malformed offset or length", body = ErrorBody),
        (status = 404, description = "No VM of that name, or no device at that mount point", body = ErrorBody),
        (status = 422, description = "The range is past the device's end", body = ErrorBody),
    ))]
pub async fn read_device(
    State(state): State<Arc<ApiState>>,
    at: Result<Path<(String, String)>, PathRejection>,
    range: Result<Query<ByteRange>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((vm, mount)) = at?;
    let Query(range) = range?;
    let target = device(&state, &vm, &mount, &range).await?;
    let (session, reader) = device_io::open_reader(state.data.endpoints(), &target)
        .await
        .map_err(ApiError::internal)?;
    let end = range.offset + range.length;
    let pieces = futures::stream::try_unfold(
        (session, reader, range.offset),
        move |(session, reader, at)| read_piece(session, reader, at, end),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, range.length.to_string()),
        ],
        Body::from_stream(pieces),
    )
        .into_response())
}

/// What a streamed read carries from one piece to the next: the session, the reader, and
/// where the next piece starts.
type ReadState = (Box<dyn DataPath>, ReaderHandle, u64);

/// The next piece of a streamed read (at most [`IO_CHUNK`]); closes the reader after the
/// last. A failure is logged here: the client only sees the body end early.
async fn read_piece(
    mut session: Box<dyn DataPath>,
    reader: ReaderHandle,
    at: u64,
    end: u64,
) -> anyhow::Result<Option<(Bytes, ReadState)>> {
    if at >= end {
        session.close_reader(reader).await?;
        return Ok(None);
    }
    let want = (end - at).min(IO_CHUNK as u64);
    match device_io::read_exact(session.as_mut(), &reader, at, want).await {
        Ok(bytes) => Ok(Some((Bytes::from(bytes), (session, reader, at + want)))),
        Err(e) => {
            tracing::error!("streaming a device read failed at {at}: {e:#}");
            Err(e)
        }
    }
}
