//! Dry run: the requests `publish` and `place` would send, found by reading the site.

use vdi_contracts::{Container, PlannedRequest, ProviderResult};

use crate::naming::{object_name, version_tag};
use crate::provider::CitrixProvider;

fn request(operation: &str, method: &str, path: &str, count: u64, note: String) -> PlannedRequest {
    PlannedRequest {
        operation: operation.into(),
        method: method.into(),
        path: path.into(),
        count,
        batched: note.starts_with("carried in"),
        note,
    }
}

impl CitrixProvider {
    pub(crate) async fn plan_version(
        &self,
        target: &str,
        container: &Container,
        machines: &[String],
    ) -> ProviderResult<Vec<PlannedRequest>> {
        let group = self.resolve_group(target).await?;
        let reference = container.reference();
        let name = object_name(&self.settings.tag_prefix, &reference, &group.id);
        let tag = version_tag(&self.settings.tag_prefix, &container.id, &container.version);
        let mut planned = Vec::new();

        if self.api.tag(&tag).await?.is_none() {
            planned.push(request("create_tag", "POST", "Tags", 1, String::new()));
        }
        if self.api.application_group(&name).await?.is_none() {
            planned.push(request(
                "create_application_group",
                "POST",
                "ApplicationGroups?async=true",
                1,
                "then polls Jobs/{id}".into(),
            ));
        }
        if self.api.application(&name).await?.is_none() {
            planned.push(request(
                "create_application",
                "POST",
                "Applications?async=true",
                1,
                "then polls Jobs/{id}".into(),
            ));
        }

        let plans = {
            let listed = self.api.group_machines(&group.id).await?;
            let names = self.tag_names(&listed).await?;
            self.tag_changes(
                &group,
                &listed,
                &names,
                machines,
                &container.id,
                &container.version,
            )
        };
        let adds = plans.iter().filter(|(add, _)| *add).count() as u64;
        let removes: u64 = plans.iter().map(|(_, removes)| *removes as u64).sum();
        let writes = adds + removes;
        let batched = writes > u64::from(self.settings.batch_threshold);
        let note = if batched {
            let batches = writes.div_ceil(u64::from(self.settings.batch_size.max(1)));
            format!(
                "carried in {batches} $batch request(s) of up to {}",
                self.settings.batch_size
            )
        } else {
            String::new()
        };
        if adds > 0 {
            planned.push(request(
                "add_machine_tag",
                "POST",
                "Machines/{machine}/Tags/{tag}",
                adds,
                note.clone(),
            ));
        }
        if removes > 0 {
            planned.push(request(
                "remove_machine_tag",
                "DELETE",
                "Machines/{machine}/Tags/{old tag}",
                removes,
                note,
            ));
        }
        if batched {
            let batches = writes.div_ceil(u64::from(self.settings.batch_size.max(1)));
            planned.push(request(
                "batch",
                "POST",
                "$batch?async=true",
                batches,
                "then polls Jobs/{id} and Jobs/{id}/Results".into(),
            ));
        }
        Ok(planned)
    }
}
