//! The daemon's side of the agent routes: which plans are due (and which restores and
//! drills wait), and the reports on runs, restores and drills.

use kura_api::agent::{
    AgentPlans, DrillView, ReportDrill, ReportRestore, ReportRun, RestoreView, RunView, StartDrill, StartRun,
};
use reqwest::Method;

use crate::remote::{client, json, send, url};
use crate::{Result, ServerConnection};

/// The agent routes of one registered machine.
pub(crate) struct Control {
    http: reqwest::Client,
    base: String,
    credential: String,
}

impl Control {
    pub fn new(conn: &ServerConnection) -> Result<Self> {
        Ok(Control {
            http: client(conn.ca_cert_pem.as_deref())?,
            base: conn.url.clone(),
            credential: conn.credential.clone(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url(&self.base, path))
            .bearer_auth(&self.credential)
            .timeout(std::time::Duration::from_secs(60))
    }

    /// The machine's plans, with the slot due and the next one of each.
    pub async fn plans(&self) -> Result<AgentPlans> {
        json(send(self.request(Method::GET, "/api/v1/agent/plans"), &self.base).await?).await
    }

    /// Starts a run for a due slot, or records it skipped.
    pub async fn start(&self, start: &StartRun) -> Result<RunView> {
        let request = self.request(Method::POST, "/api/v1/agent/runs").json(start);
        json(send(request, &self.base).await?).await
    }

    /// Claims a restore job (`running`), reports its progress or its outcome.
    pub async fn report_restore(&self, id: &str, report: &ReportRestore) -> Result<RestoreView> {
        let path = format!("/api/v1/agent/restores/{id}");
        let request = self.request(Method::PATCH, &path).json(report);
        json(send(request, &self.base).await?).await
    }

    /// Starts the drill a plan offers.
    pub async fn start_drill(&self, start: &StartDrill) -> Result<DrillView> {
        let request = self.request(Method::POST, "/api/v1/agent/drills").json(start);
        json(send(request, &self.base).await?).await
    }

    /// Reports a drill's progress or its outcome.
    pub async fn report_drill(&self, id: &str, report: &ReportDrill) -> Result<DrillView> {
        let path = format!("/api/v1/agent/drills/{id}");
        let request = self.request(Method::PATCH, &path).json(report);
        json(send(request, &self.base).await?).await
    }

    /// Reports progress or the outcome of a run.
    pub async fn report(&self, run_id: &str, report: &ReportRun) -> Result<RunView> {
        let path = format!("/api/v1/agent/runs/{run_id}");
        let request = self.request(Method::PATCH, &path).json(report);
        json(send(request, &self.base).await?).await
    }
}
