"""arq's Worker, with job starts batched and slots refilled as they free.

Stock arq starts the jobs of a poll one after the other, four Redis round trips each (WATCH, EXISTS,
ZSCORE, MULTI/EXEC), and once its ``max_jobs`` slots are full it waits for the next poll: a worker
then tops out near ``max_jobs / poll_delay`` jobs a second however fast the jobs are, and its jobs
start one by one, so their claims cannot share a statement (worker/context.py).

Here one Lua script makes the same check-and-mark for every id of a poll at once (atomically, as
WATCH/MULTI did: a job is started only if no worker has marked it in progress and it is due), and
while ids of the poll remain, each slot freed is filled again at once instead of at the next poll.
Jobs therefore start, and finish, in groups, and every group shares its statements.

The same script also does what arq's ``run_job`` asks Redis first, for every job it starts: it
reads the job and counts the try (GET, INCR, EXPIRE, a MULTI/EXEC round trip per job in arq, the
largest share of a worker's CPU after the grouped statements). ``_run`` is then arq's ``run_job``
for what this worker runs: no cron jobs, aborts, kept results or hooks (``__init__`` refuses them).

Finishing is grouped the same way: the jobs that end while one script runs are removed from the
queue (or rescheduled, for a retry) by the next single script, instead of a MULTI/EXEC of six
commands each. Everything else (polling, the in-progress markers, health checks) is arq's code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import SerializationError, deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import Retry, RetryJob, Worker, logger

#: How long arq keeps a job's try count (its run_job's EXPIRE).
RETRY_KEY_TTL_S = 88400

#: For each id: start it (mark it in progress for ARGV[2] ms) only if it is not in progress and
#: its score is due by ARGV[1], then read it and count the try, as arq's run_job does first. KEYS:
#: the queue, then each job's in-progress, job and retry keys; ARGV: now, the in-progress ms, the
#: retry key's TTL, the ids. Returns each started job's id, score, data (false if it expired) and try.
START_DUE_JOBS = """
local started = {}
for n = 1, #ARGV - 3 do
    local id, k = ARGV[n + 3], 3 * n - 1
    if redis.call('exists', KEYS[k]) == 0 then
        local score = redis.call('zscore', KEYS[1], id)
        if score and tonumber(score) <= tonumber(ARGV[1]) then
            redis.call('psetex', KEYS[k], ARGV[2], '1')
            local try = redis.call('incr', KEYS[k + 2])
            redis.call('expire', KEYS[k + 2], ARGV[3])
            started[#started + 1] = id
            started[#started + 1] = score
            started[#started + 1] = redis.call('get', KEYS[k + 1])
            started[#started + 1] = try
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
        unsupported = {
            "cron_jobs": self.cron_jobs,
            "allow_abort_jobs": self.allow_abort_jobs,
            "keep_result": self.keep_result_s or self.keep_result_forever,
            "on_job_start": self.on_job_start,
            "on_job_end": self.on_job_end,
            "after_job_end": self.after_job_end,
            "retry_jobs=False": not self.retry_jobs,
        }
        if any(unsupported.values()):
            refused = [name for name, value in unsupported.items() if value]
            raise ValueError(f"GroupStartWorker does not support {', '.join(refused)}")
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
            keys = [self.queue_name]
            for job_id in batch:
                keys += [in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id]
            in_progress_ms = int(self.in_progress_timeout_s * 1000)
            started = await self._start_due_jobs(
                keys=keys, args=[timestamp_ms(), in_progress_ms, RETRY_KEY_TTL_S, *batch]
            )
            for n in range(0, len(started), 4):
                job_id_b, score, data, job_try = started[n : n + 4]
                job_id = job_id_b.decode()
                await self.sem.acquire()  # never waits: there is a free slot for each
                self.job_counter += 1
                task = self.loop.create_task(self._run(job_id, int(float(score)), data, job_try))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task

    async def _run(self, job_id: str, score: int, data: bytes | None, job_try: int) -> None:
        """arq's run_job from its first reads on (done by START_DUE_JOBS), for this worker's
        configuration: the same outcomes, counters and warnings, without its INFO line per job
        (our jobs log their own end) or the task wait_for made per job."""
        if data is None:
            logger.warning("job %s expired", job_id)
            return await self._finish_failed(job_id)
        try:
            function_name, args, kwargs, enqueue_job_try, enqueue_time_ms = deserialize_job_raw(
                data, deserializer=self.job_deserializer
            )
        except SerializationError:
            logger.exception("deserializing job %s failed", job_id)
            return await self._finish_failed(job_id)
        function = self.functions.get(function_name)
        if function is None:
            logger.warning("job %s, function %r not found", job_id, function_name)
            return await self._finish_failed(job_id)
        ref = f"{job_id}:{function_name}"
        if enqueue_job_try and enqueue_job_try > job_try:
            job_try = enqueue_job_try
            await self.pool.setex(retry_key_prefix + job_id, RETRY_KEY_TTL_S, str(job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            logger.warning("%s max retries %d exceeded", ref, max_tries)
            return await self._finish_failed(job_id)
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        enqueued = ms_to_datetime(enqueue_time_ms)
        ctx = {**self.ctx, "job_id": job_id, "job_try": job_try, "enqueue_time": enqueued, "score": score}
        finish, incr_score = True, None
        try:
            async with asyncio.timeout(timeout_s):
                await function.coroutine(ctx, *args, **kwargs)
        except Retry as e:
            finish, incr_score = False, e.defer_score and e.defer_score + (timestamp_ms() - score)
            self.jobs_retried += 1
        except (asyncio.CancelledError, RetryJob):
            # The worker is stopping: the job stays queued for another delivery, as in arq.
            logger.info("%s cancelled, will be run again", ref)
            finish = False
            self.jobs_retried += 1
        except Exception as e:
            logger.exception("%s failed, %s: %s", ref, e.__class__.__name__, e)
            self.jobs_failed += 1
        else:
            self.jobs_complete += 1
        await asyncio.shield(self.finish_job(job_id, finish, None, None, False, incr_score, None))

    async def _finish_failed(self, job_id: str) -> None:
        self.jobs_failed += 1
        await asyncio.shield(self.finish_failed_job(job_id, None))

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
