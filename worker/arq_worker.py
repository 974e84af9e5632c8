"""arq's Worker, with job starts batched and slots refilled as they free.

Stock arq starts the jobs of a poll one after the other, four Redis round trips each (WATCH, EXISTS,
ZSCORE, MULTI/EXEC), and once its ``max_jobs`` slots are full it waits for the next poll: a worker
then tops out near ``max_jobs / poll_delay`` jobs a second however fast the jobs are, and its jobs
start one by one, so their claims cannot share a statement (worker/context.py).

Here one Lua script makes the same check-and-mark for every id of a poll at once (atomically, as
WATCH/MULTI did: a job is started only if no worker has marked it in progress and it is due), and
while ids of the poll remain, each slot freed is filled again at once instead of at the next poll.
Jobs therefore start, and finish, in groups, and every group shares its statements.

Finishing is grouped the same way: the jobs that end while one script runs are removed from the
queue (or rescheduled, for a retry) by the next single script, instead of a MULTI/EXEC of six
commands each. Everything else (running a job, retries, timeouts, health checks) is arq's code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
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


#: What arq's finish_job does for each job, for many at once. KEYS: the queue, the abort set, then
#: each job's in-progress, retry and job keys; ARGV: each job's id and its score increment: ''
#: when it finished (its keys go and it leaves the queue), else a retry's delay in ms (0: none).
FINISH_JOBS = """
for n = 1, #ARGV / 2 do
    local id, incr = ARGV[2 * n - 1], ARGV[2 * n]
    local k = 3 * n
    if incr == '' then
        redis.call('del', KEYS[k], KEYS[k + 1], KEYS[k + 2])
        redis.call('zrem', KEYS[2], id)
        redis.call('zrem', KEYS[1], id)
    else
        if incr ~= '0' then
            redis.call('zincrby', KEYS[1], incr, id)
        end
        redis.call('del', KEYS[k])
    end
end
return 0
"""


class GroupStartWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot_freed = asyncio.Event()
        self._start_due_jobs: Any = None
        self._finish_jobs: Any = None
        self._finishing: list[tuple[str, str, asyncio.Future[None]]] = []
        self._finisher: asyncio.Task[None] | None = None

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

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        if result_data or keep_in_progress is not None:  # kept results, cron jobs: not ours
            args = (result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress)
            await super().finish_job(job_id, finish, *args)
            return
        done: asyncio.Future[None] = self.loop.create_future()
        self._finishing.append((job_id, "" if finish else str(incr_score or 0), done))
        if self._finisher is None or self._finisher.done():
            self._finisher = self.loop.create_task(self._finish_pending())
        await done

    async def _finish_pending(self) -> None:
        if self._finish_jobs is None:
            self._finish_jobs = self.pool.register_script(FINISH_JOBS)
        while self._finishing:
            group, self._finishing = self._finishing, []
            keys: list[str] = [self.queue_name, abort_jobs_ss]
            args: list[str] = []
            for job_id, incr, _ in group:
                keys += [in_progress_key_prefix + job_id, retry_key_prefix + job_id, job_key_prefix + job_id]
                args += [job_id, incr]
            try:
                await self._finish_jobs(keys=keys, args=args)
            except Exception as exc:
                for *_, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for *_, done in group:
                    if not done.done():
                        done.set_result(None)
