"""arq's Worker, with job starts batched and slots refilled as they free.

Stock arq starts the jobs of a poll one after the other, four Redis round trips each (WATCH, EXISTS,
ZSCORE, MULTI/EXEC), and once its ``max_jobs`` slots are full it waits for the next poll: a worker
then tops out near ``max_jobs / poll_delay`` jobs a second however fast the jobs are, and its jobs
start one by one, so their claims cannot share a statement (worker/context.py).

Here one Lua script makes the same check-and-mark for every id of a poll at once (atomically, as
WATCH/MULTI did: a job is started only if no worker has marked it in progress and it is due), and
while ids of the poll remain, each slot freed is filled again at once instead of at the next poll.
Jobs therefore start, and finish, in groups, and every group shares its statements.
Everything else (running a job, retries, results, health checks) is arq's own code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

#: For each id: start it (mark it in progress for ARGV[2] ms) only if it is not in progress and
#: its score is due by ARGV[1]; returns the started ids with their scores.
START_DUE_JOBS = """
local started = {}
for i = 2, #KEYS do
    local id = ARGV[i + 1]
    if redis.call('exists', KEYS[i]) == 0 then
        local score = redis.call('zscore', KEYS[1], id)
        if score and tonumber(score) <= tonumber(ARGV[1]) then
            redis.call('psetex', KEYS[i], ARGV[2], '1')
            started[#started + 1] = id
            started[#started + 1] = score
        end
    end
end
return started
"""


class GroupStartWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot_freed = asyncio.Event()
        self._start_due_jobs: Any = None

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        if self._start_due_jobs is None:
            self._start_due_jobs = self.pool.register_script(START_DUE_JOBS)
        pending = [job_id.decode() for job_id in job_ids]
        while pending and self.allow_pick_jobs:
            free = self.max_jobs - self.job_counter
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                # Jobs of one group finish in the same moment: let them all free their slots.
                await asyncio.sleep(0)
                continue
            batch, pending = pending[:free], pending[free:]
            started = await self._start_due_jobs(
                keys=[self.queue_name, *(in_progress_key_prefix + job_id for job_id in batch)],
                args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), *batch],
            )
            for job_id_b, score in zip(started[::2], started[1::2], strict=True):
                job_id = job_id_b.decode()
                await self.sem.acquire()  # never waits: there is a free slot for each
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, int(float(score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
