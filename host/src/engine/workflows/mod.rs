//! The workflows, one file each, and the registry: the one place that lists them. Adding a
//! workflow is its file plus one line in [`registry!`]'s invocation below; the API's
//! `POST /v1/jobs`, the CLI, the journal and resume all reach it through what this generates.

pub mod blocks;
pub mod copy;
pub mod restore;
pub mod restore_device;
pub mod revert;
pub mod snapshot;

use std::sync::Arc;

use super::jobs::workflow::{Planned, PlannedRun, Services, Workflow};

/// Generates [`JobRequest`] (one variant per workflow, tagged by its kind), its OpenAPI
/// schema, and the look-ups from a request or a stored job kind to the workflow.
macro_rules! registry {
    ($($variant:ident => $workflow:ty, $args:ty;)+) => {
        /// A job to start, as the API receives it: `kind` names the workflow, the other
        /// fields are its arguments.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum JobRequest {
            $(
                #[doc = concat!("Arguments of the `", stringify!($variant), "` workflow.")]
                $variant($args),
            )+
        }

        impl JobRequest {
            /// The job kind this request starts.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$workflow as Workflow>::KIND,)+
                }
            }

            /// Settles, loads and checks the request: a job that can be recorded.
            pub(crate) fn plan(&self, services: &Services<'_>) -> anyhow::Result<Arc<dyn Planned>> {
                Ok(match self {
                    $(Self::$variant(args) => Arc::new(
                        PlannedRun::<$workflow>::plan(args.clone(), services, true)?,
                    ),)+
                })
            }
        }

        /// Plans a recorded job again from its kind and stored arguments (resume).
        pub(crate) fn replan(
            kind: &str,
            params: &serde_json::Value,
            services: &Services<'_>,
        ) -> anyhow::Result<Arc<dyn Planned>> {
            $(
                if kind == <$workflow as Workflow>::KIND {
                    return PlannedRun::<$workflow>::from_params(params, services);
                }
            )+
            anyhow::bail!("unknown job kind '{kind}'")
        }

        /// Every registered kind, for checks that the registry is whole.
        pub fn kinds() -> Vec<&'static str> {
            vec![$(<$workflow as Workflow>::KIND,)+]
        }

        impl utoipa::PartialSchema for JobRequest {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let mut one_of = utoipa::openapi::schema::OneOfBuilder::new();
                $(
                    one_of = one_of.item(tagged_variant(
                        <$workflow as Workflow>::KIND,
                        <$args as utoipa::PartialSchema>::schema(),
                    ));
                )+
                one_of.into()
            }
        }
    };
}

registry! {
    Snapshot => snapshot::Snapshot, snapshot::SnapshotArgs;
    Revert => revert::Revert, revert::RevertArgs;
    Copy => copy::Copy, copy::CopyArgs;
    Restore => restore::Restore, restore::RestoreArgs;
    RestoreDevice => restore_device::RestoreDevice, restore_device::RestoreDeviceArgs;
}

impl utoipa::ToSchema for JobRequest {}

/// One variant's schema: its arguments' object with the `kind` tag added and, as serde
/// refuses unknown fields, closed.
fn tagged_variant(
    kind: &str,
    args: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
    let RefOr::T(Schema::Object(mut object)) = args else {
        return args;
    };
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([kind]))
        .description(Some("The workflow to run"));
    object.properties.insert("kind".to_string(), tag.into());
    object.required.insert(0, "kind".to_string());
    object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    RefOr::T(Schema::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_its_variant_name_and_unique() {
        let kinds = kinds();
        let mut unique = kinds.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "{kinds:?}");
        let samples = [
            r#"{"kind":"snapshot","vm":"a"}"#,
            r#"{"kind":"revert","vm":"a","point":"p"}"#,
            r#"{"kind":"copy","vm":"a","point":"p"}"#,
            r#"{"kind":"restore","vm":"a","point":"p","host":"h"}"#,
            r#"{"kind":"restore-device","vm":"a","point":"p","device":"C:"}"#,
        ];
        assert_eq!(samples.len(), kinds.len(), "a sample per workflow");
        for (sample, kind) in samples.iter().zip(&kinds) {
            let request: JobRequest = serde_json::from_str(sample).unwrap();
            assert_eq!(request.kind(), *kind, "{sample}");
        }
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(
            serde_json::from_str::<JobRequest>(r#"{"kind":"snapshot","vm":"a","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<JobRequest>(r#"{"kind":"nope","vm":"a"}"#).is_err());
    }

    #[test]
    fn the_schema_is_closed_and_tagged() {
        let schema = serde_json::to_value(<JobRequest as utoipa::PartialSchema>::schema()).unwrap();
        let variants = schema["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), kinds().len());
        for (variant, kind) in variants.iter().zip(kinds()) {
            assert_eq!(variant["additionalProperties"], false, "{variant}");
            assert_eq!(variant["properties"]["kind"]["enum"][0], kind, "{variant}");
            assert_eq!(variant["required"][0], "kind", "{variant}");
        }
    }
}
