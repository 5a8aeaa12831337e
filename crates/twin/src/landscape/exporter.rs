//! HTTP side of the simulated landscape: one listener per seed serving its shoots' control
//! planes under `/<namespace>/<component>/…`, and one for the garden exporter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::control_plane::{ControlPlane, ShootId};
use super::garden::Garden;

/// Every simulated control plane (by namespace) and the garden.
#[derive(Debug)]
pub struct World {
    /// Control planes by namespace.
    pub planes: BTreeMap<String, ControlPlane>,
    /// The garden exporter.
    pub garden: Garden,
}

/// The world, shared by the listeners and the twin.
#[derive(Debug, Clone)]
pub struct SharedWorld(Arc<Mutex<World>>);

impl SharedWorld {
    /// Wraps `world`.
    pub fn new(world: World) -> Self {
        Self(Arc::new(Mutex::new(world)))
    }

    /// Locks the world (a panicked holder leaves consistent-enough counters behind).
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `shoot`'s API server down or brings it back (control plane and garden
    /// conditions). Returns false for an unknown shoot.
    pub fn set_outage(&self, shoot: &ShootId, down: bool) -> bool {
        let mut world = self.lock();
        let Some(plane) = world.planes.get_mut(&shoot.namespace()) else {
            return false;
        };
        plane.set_outage(down);
        world.garden.set_api_server_down(shoot, down);
        true
    }

    /// Runs `f` on `shoot`'s control plane; false for an unknown shoot. Unlike
    /// [`Self::set_outage`] nothing reaches the garden (a planned scale-down, a broken probe).
    pub fn with_plane(&self, shoot: &ShootId, f: impl FnOnce(&mut ControlPlane)) -> bool {
        let mut world = self.lock();
        world.planes.get_mut(&shoot.namespace()).map(f).is_some()
    }
}

#[derive(Clone)]
struct SeedState {
    world: SharedWorld,
    seed: String,
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The routes of seed `seed`'s control planes.
pub fn seed_app(world: SharedWorld, seed: &str) -> Router {
    Router::new()
        .route("/{namespace}/{component}/metrics", get(metrics))
        .route("/{namespace}/{component}/probe", get(probe))
        .route(
            "/{namespace}/kube-apiserver/proxy/blackbox-exporter/probe",
            get(shoot_probe),
        )
        .with_state(SeedState {
            world,
            seed: seed.to_owned(),
        })
}

/// Runs `f` on the control plane of `namespace` if it belongs to this seed.
fn with_plane<T>(
    state: &SeedState,
    namespace: &str,
    f: impl FnOnce(&mut ControlPlane) -> T,
) -> Option<T> {
    let mut world = state.world.lock();
    world
        .planes
        .get_mut(namespace)
        .filter(|p| p.id().seed == state.seed)
        .map(f)
}

async fn metrics(
    State(state): State<SeedState>,
    Path((namespace, component)): Path<(String, String)>,
) -> Response {
    let body = with_plane(&state, &namespace, |plane| match component.as_str() {
        "kube-apiserver" => plane
            .kube_apiserver_metrics()
            .ok_or(StatusCode::SERVICE_UNAVAILABLE),
        "machine-controller-manager" => Ok(plane.mcm_metrics()),
        "kube-state-metrics" => Ok(plane.kube_state_metrics()),
        _ => Err(StatusCode::NOT_FOUND),
    });
    match body {
        Some(Ok(body)) => text(body),
        Some(Err(status)) => status.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn probe(
    State(state): State<SeedState>,
    Path((namespace, component)): Path<(String, String)>,
) -> Response {
    let body = with_plane(&state, &namespace, |plane| match component.as_str() {
        "blackbox-exporter" => Some(plane.seed_probe()),
        "tunnel-probe" => Some(plane.vpn_probe()),
        _ => None,
    });
    match body.flatten() {
        Some(body) => text(body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn shoot_probe(State(state): State<SeedState>, Path(namespace): Path<String>) -> Response {
    match with_plane(&state, &namespace, ControlPlane::shoot_probe) {
        Some(Some(body)) => text(body),
        // The API server is down: its service proxy does not answer.
        Some(None) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The garden exporter's `/metrics`.
pub fn garden_app(world: SharedWorld) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(world): State<SharedWorld>| async move { text(world.lock().garden.metrics()) }),
        )
        .with_state(world)
}
