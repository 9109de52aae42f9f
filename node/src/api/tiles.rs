//! The log as C2SP tlog-tiles: `GET /checkpoint`, `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`, read from the store without rebuilding the tree.
//!
//! * `/checkpoint`: the head's certificate (with the outside witnesses' cosignatures the node
//!   holds for it), `text/plain; charset=utf-8`, cacheable for [`CHECKPOINT_MAX_AGE_S`] s only.
//! * hash tiles: `W` stored complete subtrees (`ledger::tiles::hash_tile`: one range read; a
//!   level-0 tile hashes its `W` stored leaves), `application/octet-stream`, immutable: the
//!   bytes of a tile path never change, full or partial, so both are
//!   `Cache-Control: public, max-age=31536000, immutable`.
//! * entry bundles: each entry is a leaf's canonical attestation bytes (docs/encoding.md),
//!   `u16` big-endian length first. A bundle holds the facts of many enterprises in clear,
//!   so `/tile/entries/...` is its own route in the regulator scope (`access::route_scope`),
//!   like whole blocks, logged like them (a query record per enterprise, `ReadKind::EntryBundle`)
//!   and marked `private` for caches; hash tiles and the checkpoint are public (docs/ACCESS.md).
//! * Full tiles, which never change, are kept in bounded caches ([`HASH_TILE_CACHE_BYTES_MAX`],
//!   [`ENTRY_TILE_CACHE_BYTES_MAX`]).
//!
//! Partial tiles are served for every width the current tree has (a request for a width the
//! tree does not have yet, or a tile beyond it, is 404: tlog-tiles never serves empty tiles).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use credence_ledger::access::ReadKind;
use credence_ledger::block::Leaf;
use credence_ledger::tiles::{self, Tile, TileError, TileKind};

use super::access::Reader;
use super::error::ApiError;
use super::handlers::{blocking, log_bulk_read, reader_of};
use super::views::ErrorBody;
use super::{ApiState, StoreView};

/// `Cache-Control` max-age of `/checkpoint`, seconds (tlog-tiles: no caching beyond a few seconds).
pub const CHECKPOINT_MAX_AGE_S: u32 = 2;
/// `Cache-Control` of hash tiles: a year, immutable, for any cache.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Entry bundles never change either, but only their reader may keep them: a shared cache
/// must not serve a regulator's answer to anyone else.
const IMMUTABLE_PRIVATE: &str = "private, max-age=31536000, immutable";
/// Most bytes of full hash tiles kept in memory: 64 MiB holds every full hash tile of a
/// log of about 2 million records (a full level-0 tile is 8 KiB for 256 records), so a
/// node serving a log of that size hashes each level-0 tile once. A level-0 tile that
/// misses costs 256 leaf reads and hashes; the levels above are one range read.
pub const HASH_TILE_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most bytes of full entry bundles kept in memory (8 MiB: about 64 bundles of 256 records).
pub const ENTRY_TILE_CACHE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Full tiles by path, oldest dropped first: hash tiles and entry bundles apart, so that
/// large entry bundles never push out the hash tiles every client walks.
#[derive(Debug)]
pub struct TileCache {
    hashes: Mutex<CacheInner>,
    entries: Mutex<CacheInner>,
}

impl Default for TileCache {
    fn default() -> TileCache {
        TileCache {
            hashes: Mutex::new(CacheInner::new(HASH_TILE_CACHE_BYTES_MAX)),
            entries: Mutex::new(CacheInner::new(ENTRY_TILE_CACHE_BYTES_MAX)),
        }
    }
}

/// One part of the cache, at most `bytes_max` bytes of tiles.
#[derive(Debug)]
struct CacheInner {
    tiles: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
    bytes_max: usize,
}

impl CacheInner {
    fn new(bytes_max: usize) -> CacheInner {
        CacheInner { tiles: HashMap::new(), order: VecDeque::new(), bytes: 0, bytes_max }
    }
}

impl TileCache {
    fn part(&self, entries: bool) -> &Mutex<CacheInner> {
        if entries { &self.entries } else { &self.hashes }
    }

    fn get(&self, path: &str, entries: bool) -> Option<Bytes> {
        self.part(entries).lock().ok()?.tiles.get(path).cloned()
    }

    fn put(&self, path: String, bytes: Bytes, entries: bool) {
        let Ok(mut c) = self.part(entries).lock() else { return };
        if bytes.len() > c.bytes_max || c.tiles.contains_key(&path) {
            return;
        }
        while c.bytes + bytes.len() > c.bytes_max {
            let Some(old) = c.order.pop_front() else { break };
            if let Some(b) = c.tiles.remove(&old) {
                c.bytes -= b.len();
            }
        }
        c.bytes += bytes.len();
        c.order.push_back(path.clone());
        c.tiles.insert(path, bytes);
    }
}

/// The latest checkpoint, as C2SP tlog-tiles serves it.
#[utoipa::path(
    get,
    path = "/checkpoint",
    tag = "tiles",
    responses(
        (status = 200, description = "The head's C2SP checkpoint (signed note: the validators' Ed25519 signatures, then any witnesses' cosignature/v1 lines); `Cache-Control: public, max-age=2`", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No block committed yet", body = ErrorBody),
    )
)]
pub async fn checkpoint(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let note = super::handlers::head_note(&st).await?;
    let mut r = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response();
    let cache = format!("public, max-age={CHECKPOINT_MAX_AGE_S}");
    if let Ok(v) = HeaderValue::from_str(&cache) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    Ok(r)
}

/// A hash tile (C2SP tlog-tiles); public.
///
/// `path` is the rest of the URL after `/tile/`: `<L>/<N>[.p/<W>]` for the hashes at tree
/// level 8·L (L = 0..63, no leading zeros); `<N>` in 3-digit path elements, all but the last
/// prefixed with `x` (`x001/x234/067`); W = 1..255 for a partial tile. A full tile is 256
/// hashes (8,192 bytes).
#[utoipa::path(
    get,
    path = "/tile/{path}",
    tag = "tiles",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` (several path segments)")),
    responses(
        (status = 200, description = "The tile; `Cache-Control: public, max-age=31536000, immutable`", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "Not a tile path, or a tile the tree does not hold (yet)", body = ErrorBody),
    )
)]
pub async fn tile(State(st): State<ApiState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    serve(st, format!("tile/{path}"), None).await
}

/// An entry bundle (C2SP tlog-tiles): the leaves' canonical attestation bytes, each after its
/// length as a big-endian u16. It holds many enterprises' facts in clear, so it is served only
/// to a signed request whose access key has the regulator scope (docs/ACCESS.md), and the read
/// is logged first: one query record per enterprise, as for a whole block.
///
/// `path` is the rest of the URL after `/tile/entries/`: `<N>[.p/<W>]` as for hash tiles.
#[utoipa::path(
    get,
    path = "/tile/entries/{path}",
    tag = "tiles",
    params(("path" = String, Path, description = "`<N>[.p/<W>]` (several path segments)")),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "The entry bundle; `Cache-Control: private, max-age=31536000, immutable` (a shared cache must not keep it)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the regulator scope: a bundle holds many enterprises' facts", body = ErrorBody),
        (status = 404, description = "Not an entry-bundle path, or a bundle the tree does not hold (yet)", body = ErrorBody),
        (status = 503, description = "The query log cannot take this read's records now (code `busy`), or this node has no member key to log it (`no_query_log`): retry, or read at a member's node", body = ErrorBody),
    )
)]
pub async fn entry_bundle(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let reader = reader_of(reader)?;
    serve(st, format!("tile/entries/{path}"), Some(reader)).await
}

/// The tile at `full_path` (`tile/...`), from the cache or the store, if it is an entry
/// bundle exactly when the route that authenticated the request gave its `reader`. An entry
/// bundle's read is logged (`log_bulk_read`: one query record per enterprise) before the
/// bundle leaves, also when it comes from the cache.
async fn serve(st: ApiState, full_path: String, reader: Option<Reader>) -> Result<Response, ApiError> {
    let entries = reader.is_some();
    let tile = Tile::parse_path(&full_path).map_err(|e| match e {
        TileError::Path { rule, .. } => ApiError::not_found("path", rule),
        other => ApiError::not_found("path", other.to_string()),
    })?;
    if (tile.kind == TileKind::Entries) != entries {
        return Err(ApiError::not_found("path", format!("{full_path} is not served by this route")));
    }
    let bytes = match st.tiles.get(&full_path, entries) {
        Some(b) => b,
        None => {
            let state = st.clone();
            let bytes = blocking(move || read_tile(&state, &tile)).await?;
            if tile.is_full() {
                st.tiles.put(full_path, bytes.clone(), entries);
            }
            bytes
        }
    };
    if let Some(reader) = reader.filter(|r| !r.offline) {
        let (state, logged) = (st.clone(), bytes.clone());
        blocking(move || {
            let leaves = tiles::parse_entry_bundle(&tile, &logged)
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|e| Leaf::from_bytes(e.to_vec()).map_err(ApiError::internal))
                .collect::<Result<Vec<Leaf>, ApiError>>()?;
            let store = state.read_store()?;
            log_bulk_read(&state, &*store, &reader, &leaves, ReadKind::EntryBundle { index: tile.index }, "path")
        })
        .await?;
    }
    let cache = if entries { IMMUTABLE_PRIVATE } else { IMMUTABLE };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes).into_response())
}

/// The tile's bytes from the store, if the committed tree holds all of it.
fn read_tile(st: &ApiState, tile: &Tile) -> Result<Bytes, ApiError> {
    let store = st.read_store()?;
    let size = store.head()?.map_or(0, |h| h.tree_size);
    let beyond = || ApiError::not_found("path", format!("{} is beyond the tree of size {size}", tile.path()));
    if !tile.within(size) {
        return Err(beyond());
    }
    match tile.kind {
        TileKind::Hashes { .. } => match tiles::hash_tile(tile, size, &StoreView(&*store)) {
            Ok(b) => Ok(Bytes::from(b)),
            Err(TileError::BeyondTree { .. }) => Err(beyond()),
            Err(e) => Err(ApiError::internal(e)),
        },
        TileKind::Entries => {
            let first = u64::try_from(tile.first()).map_err(|_| beyond())?;
            let mut leaves = Vec::with_capacity(usize::from(tile.width));
            store.leaf_bytes(first, usize::from(tile.width), &mut leaves)?;
            let bundle = tiles::entry_bundle(first, leaves.iter().map(Vec::as_slice)).map_err(ApiError::internal)?;
            Ok(Bytes::from(bundle))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_keeps_its_newest_tiles_within_its_bound() {
        let cache = TileCache::default();
        let tile = |n: usize| Bytes::from(vec![n as u8; 8192]);
        let fit = HASH_TILE_CACHE_BYTES_MAX / 8192;
        for n in 0..fit + 3 {
            cache.put(format!("tile/0/{n:03}"), tile(n), false);
        }
        // The three oldest went; the rest are there, byte for byte.
        for n in 0..3 {
            assert!(cache.get(&format!("tile/0/{n:03}"), false).is_none(), "tile {n} kept past the bound");
        }
        assert_eq!(cache.get("tile/0/003", false), Some(tile(3)));
        assert_eq!(cache.get(&format!("tile/0/{:03}", fit + 2), false), Some(tile(fit + 2)));
        let hashes = cache.hashes.lock().unwrap();
        assert!(hashes.bytes <= HASH_TILE_CACHE_BYTES_MAX && hashes.bytes == hashes.tiles.len() * 8192);
        drop(hashes);

        // Entry bundles fill their own part and push out no hash tile.
        let bundle = Bytes::from(vec![7u8; ENTRY_TILE_CACHE_BYTES_MAX / 4]);
        for n in 0..6 {
            cache.put(format!("tile/entries/{n:03}"), bundle.clone(), true);
        }
        assert!(cache.get("tile/entries/001", true).is_none() && cache.get("tile/entries/005", true).is_some());
        assert!(cache.get("tile/entries/005", false).is_none(), "parts are apart");
        assert_eq!(cache.get("tile/0/003", false), Some(tile(3)));
        // A tile larger than its part is not kept.
        cache.put("tile/entries/999".into(), Bytes::from(vec![0u8; ENTRY_TILE_CACHE_BYTES_MAX + 1]), true);
        assert!(cache.get("tile/entries/999", true).is_none());
    }
}
