//! The in-memory fallback that holds records while disk writes fail, bounded by
//! [`QueueOptions::memory_fallback_bytes`], and moves them to disk once writes succeed again.

use super::*;

#[derive(Debug)]
pub(super) struct MemRecord {
    pub(super) id: u64,
    pub(super) created: i64,
    pub(super) payload: Bytes,
    pub(super) state: State,
}

impl DiskQueue {
    /// Removes finished records from the front of the memory fallback.
    pub(super) fn trim_memory(&mut self) {
        while let Some(m) = self.memory.front() {
            if m.state != State::Done {
                break;
            }
            self.memory_bytes -= rec_size(m.payload.len());
            // Never written: remembered as done so that its hole in the chain is no loss.
            self.done_extra.insert(m.id, m.id);
            self.memory.pop_front();
        }
    }

    /// Moves buffered records to disk in id order; stops at the first failure.
    pub(super) fn flush_memory(&mut self) -> io::Result<()> {
        self.trim_memory();
        while let Some(m) = self.memory.front() {
            let (id, created, payload, state) = (m.id, m.created, m.payload.clone(), m.state);
            self.write_record(id, created, &payload, state)?;
            self.memory_bytes -= rec_size(payload.len());
            self.memory.pop_front();
            self.trim_memory();
        }
        Ok(())
    }

    /// Keeps a record whose disk write failed; evicts the oldest buffered records to fit.
    pub(super) fn push_memory(
        &mut self,
        id: u64,
        created: i64,
        payload: Bytes,
        err: io::Error,
    ) -> Result<(), QueueError> {
        let size = rec_size(payload.len());
        if size > self.opts.memory_fallback_bytes {
            self.live_records -= 1;
            self.live_bytes -= size;
            return Err(QueueError::FallbackFull { size, source: err });
        }
        while self.memory_bytes + size > self.opts.memory_fallback_bytes {
            let Some(m) = self.memory.pop_front() else {
                break;
            };
            self.done_extra.insert(m.id, m.id);
            let s = rec_size(m.payload.len());
            self.memory_bytes -= s;
            if m.state != State::Done {
                self.live_records -= 1;
                self.live_bytes -= s;
                self.drops.max_bytes += 1;
            }
        }
        self.memory.push_back(MemRecord {
            id,
            created,
            payload,
            state: State::Pending,
        });
        self.memory_bytes += size;
        Ok(())
    }
}
