//! Directory trees fetched ahead of a walk that visits them depth-first in name order (a
//! backup's walk of its parent snapshot, a restore's walk of its snapshot).
//!
//! Through the server every read is a round trip: a walk that fetched the trees below a
//! directory when it got there waited on the network once per directory. This module owns
//! the trees fetched ahead: fetcher threads read them in batches of up to
//! [`MAX_BLOBS_PER_REQUEST`], several requests in flight, in the order the walk will ask
//! for them, and keep them until the walk takes them. Memory stays bounded: fetching pauses
//! while the trees not yet taken weigh [`MAX_CACHED_WEIGHT`], and the walk releases
//! the trees of directories it will not enter.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use kura_api::vault::MAX_BLOBS_PER_REQUEST;
use kura_format::ChunkId;
use kura_format::tree::{NodeKind, Tree};

use crate::{OpenVault, Result};

/// Fetching pauses while the trees fetched and not yet taken weigh this much (see
/// [`weight`]; a decoded entry takes about 200 bytes, an extent 40): 10-20 MiB.
const MAX_CACHED_WEIGHT: usize = 64 * 1024;
/// Requests in flight at once: while one is answered the next is already on its way.
const FETCHERS: usize = 2;

/// The subdirectory trees of `tree`, in its (name) order.
fn subtree_ids(tree: &Tree) -> impl DoubleEndedIterator<Item = ChunkId> + '_ {
    tree.nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .filter_map(|n| n.subtree)
}

/// What a tree costs in the cache: one for the tree, each entry and each extent of a file.
fn weight(tree: &Tree) -> usize {
    1 + tree.nodes.iter().map(|n| 1 + n.content.len()).sum::<usize>()
}

enum Phase {
    Queued,
    InFlight,
    Ready(Tree),
}

/// A tree the walk will take `wants` times (identical directories share a tree).
struct Entry {
    wants: usize,
    phase: Phase,
}

#[derive(Default)]
struct State {
    /// Ids to fetch, the next in walk order on top. Depth-first order holds because a
    /// fetched batch's children go on top, the first tree's children topmost. An id no
    /// longer queued stays on the stack and is skipped.
    stack: Vec<ChunkId>,
    entries: HashMap<ChunkId, Entry>,
    /// The [`weight`] of the ready trees.
    ready_weight: usize,
    stopped: bool,
}

impl State {
    fn full(&self) -> bool {
        self.ready_weight >= MAX_CACHED_WEIGHT
    }

    /// Queues the subdirectory trees of `tree`, the first on top.
    fn queue_children(&mut self, tree: &Tree) {
        for id in subtree_ids(tree).rev() {
            match self.entries.get_mut(&id) {
                Some(entry) => entry.wants += 1,
                None => {
                    self.entries.insert(
                        id,
                        Entry {
                            wants: 1,
                            phase: Phase::Queued,
                        },
                    );
                    self.stack.push(id);
                }
            }
        }
    }

    /// One of the walk's takes of `id` will not happen, nor those of the trees below it.
    fn release(&mut self, id: &ChunkId) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        entry.wants -= 1;
        // Each copy of a fetched tree queued its children once.
        let children: Vec<ChunkId> = match &entry.phase {
            Phase::Ready(tree) => subtree_ids(tree).collect(),
            Phase::Queued | Phase::InFlight => Vec::new(),
        };
        // A tree in flight arrives to no entry and is dropped.
        if entry.wants == 0
            && let Some(Entry {
                phase: Phase::Ready(tree),
                ..
            }) = self.entries.remove(id)
        {
            self.ready_weight -= weight(&tree);
        }
        for sub in &children {
            self.release(sub);
        }
    }

    /// One copy of tree `id`, if it is ready.
    fn take_ready(&mut self, id: &ChunkId) -> Option<Tree> {
        let entry = self.entries.get_mut(id)?;
        let Phase::Ready(tree) = &entry.phase else {
            return None;
        };
        if entry.wants > 1 {
            entry.wants -= 1;
            return Some(tree.clone());
        }
        let Entry {
            phase: Phase::Ready(tree),
            ..
        } = self.entries.remove(id)?
        else {
            return None;
        };
        self.ready_weight -= weight(&tree);
        Some(tree)
    }
}

/// The trees fetched ahead of one walk; see the module docs.
pub(crate) struct TreePrefetch<'a> {
    vault: &'a OpenVault,
    state: Mutex<State>,
    changed: Condvar,
}

impl<'a> TreePrefetch<'a> {
    /// Runs `walk` with fetcher threads that serve it the trees it takes.
    pub(crate) fn with<R>(vault: &'a OpenVault, walk: impl FnOnce(&TreePrefetch<'a>) -> R) -> R {
        let prefetch = TreePrefetch {
            vault,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        };
        /// Stops the fetchers however the walk ends, so the scope can join them.
        struct Stop<'p, 'v>(&'p TreePrefetch<'v>);
        impl Drop for Stop<'_, '_> {
            fn drop(&mut self) {
                self.0.lock().stopped = true;
                self.0.changed.notify_all();
            }
        }
        std::thread::scope(|scope| {
            for _ in 0..FETCHERS {
                scope.spawn(|| prefetch.fetch());
            }
            let _stop = Stop(&prefetch);
            walk(&prefetch)
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("prefetch lock")
    }

    fn wait<'g>(&self, state: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.changed.wait(state).expect("prefetch lock")
    }

    /// Fetcher thread: fetches the top of the stack in batches until stopped.
    fn fetch(&self) {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return;
            }
            if state.full() || state.stack.is_empty() {
                state = self.wait(state);
                continue;
            }
            let mut batch = Vec::new();
            while batch.len() < MAX_BLOBS_PER_REQUEST
                && let Some(id) = state.stack.pop()
            {
                if let Some(entry) = state.entries.get_mut(&id)
                    && matches!(entry.phase, Phase::Queued)
                {
                    entry.phase = Phase::InFlight;
                    batch.push(id);
                }
            }
            if batch.is_empty() {
                continue;
            }
            drop(state);
            let fetched = self.vault.handle.block_on(self.vault.load_trees(&batch));
            state = self.lock();
            let Ok(trees) = fetched else {
                // Left to the walk, which fetches each tree it needs itself.
                for id in &batch {
                    if matches!(state.entries.get(id), Some(e) if matches!(e.phase, Phase::InFlight)) {
                        state.entries.remove(id);
                    }
                }
                self.changed.notify_all();
                continue;
            };
            // The last tree's children first, so the first tree's end up on top.
            for (id, tree) in batch.into_iter().zip(trees).rev() {
                // No entry: released while in flight.
                let Some(entry) = state.entries.get(&id) else {
                    continue;
                };
                if matches!(entry.phase, Phase::Ready(_)) {
                    continue;
                }
                for _ in 0..entry.wants {
                    state.queue_children(&tree);
                }
                state.ready_weight += weight(&tree);
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.phase = Phase::Ready(tree);
                }
            }
            self.changed.notify_all();
        }
    }

    /// The tree `id`: fetched ahead, or fetched now when the fetchers will not bring it
    /// soon. Its subdirectory trees are queued either way.
    pub(crate) fn take(&self, id: &ChunkId) -> Result<Tree> {
        let mut state = self.lock();
        if matches!(state.entries.get(id), Some(e) if matches!(e.phase, Phase::Queued)) {
            // Wanted now: fetched with the next batch, wherever it was on the stack.
            state.stack.push(*id);
            self.changed.notify_all();
        }
        loop {
            if let Some(tree) = state.take_ready(id) {
                self.changed.notify_all();
                return Ok(tree);
            }
            let full = state.full();
            match state.entries.get_mut(id) {
                Some(entry) if matches!(entry.phase, Phase::InFlight) || !full => {}
                Some(entry) => {
                    // Queued while fetching is paused: fetched here instead.
                    entry.wants -= 1;
                    if entry.wants == 0 {
                        state.entries.remove(id);
                    }
                    break;
                }
                None => break,
            }
            state = self.wait(state);
        }
        drop(state);
        let tree = self.vault.load_tree_blocking(id)?;
        self.lock().queue_children(&tree);
        self.changed.notify_all();
        Ok(tree)
    }

    /// A tree the walk expects to take; see [`TreeTicket`].
    pub(crate) fn ticket(&self, id: ChunkId) -> TreeTicket<'_, 'a> {
        TreeTicket { prefetch: self, id }
    }
}

/// A tree of the parent snapshot the walk may take: a directory the parent had. Dropped
/// untaken (the directory is gone, excluded, no longer a directory), it releases the tree
/// and those below it, so the prefetcher drops them.
pub(crate) struct TreeTicket<'p, 'v> {
    prefetch: &'p TreePrefetch<'v>,
    id: ChunkId,
}

impl TreeTicket<'_, '_> {
    /// The id of the tree this ticket is for.
    pub(crate) fn id(&self) -> ChunkId {
        self.id
    }

    pub(crate) fn take(self) -> Result<Tree> {
        let (prefetch, id) = (self.prefetch, self.id);
        // Taken, so not released.
        std::mem::forget(self);
        prefetch.take(&id)
    }
}

impl Drop for TreeTicket<'_, '_> {
    fn drop(&mut self) {
        self.prefetch.lock().release(&self.id);
        self.prefetch.changed.notify_all();
    }
}
