//! `status` of every environment: the body `shipctl status --output json`
//! prints and the watch's `GET /api/status` serves (DESIGN §11), one shape.

use super::{Style, Text};
use crate::engine::EnvStatus;
use serde::Serialize;

#[derive(Serialize)]
pub struct AllStatus {
    pub environments: Vec<EnvStatus>,
}

impl Text for AllStatus {
    fn text(&self, s: &Style) -> String {
        self.environments.text(s)
    }
}
