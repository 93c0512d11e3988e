import { Controller, Delete, Get, HttpCode, HttpException, HttpStatus, Param, Post } from '@nestjs/common';
import { Spool } from './spool';

/** Event ids are UUIDs; anything else is refused before it gets near a file name. */
const EVENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** /spool on the management port (RELAY_MODE=spool only): the queue at a glance and the dead letters. */
@Controller('spool')
export class SpoolController {
  constructor(private readonly spool: Spool) {}

  @Get()
  summary() {
    return this.spool.summary();
  }

  @Get('dead-letters')
  deadLetters() {
    return { deadLetters: this.spool.deadLetters() };
  }

  @Post('dead-letters/requeue')
  @HttpCode(HttpStatus.OK)
  requeueAll() {
    return this.spool.requeueAll();
  }

  @Post('dead-letters/:id/requeue')
  @HttpCode(HttpStatus.OK)
  async requeue(@Param('id') id: string) {
    const done = await this.spool.requeue(checked(id));
    if (done === null) throw notFound(id);
    return { requeued: done.id };
  }

  @Delete('dead-letters/:id')
  @HttpCode(HttpStatus.OK)
  async discard(@Param('id') id: string) {
    if (!(await this.spool.discard(checked(id)))) throw notFound(id);
    return { deleted: id };
  }
}

function checked(id: string): string {
  if (!EVENT_ID.test(id))
    throw new HttpException(
      { error: 'bad_request', message: 'an event id is a lower-case UUID, as the 202 answer gave it' },
      HttpStatus.BAD_REQUEST,
    );
  return id;
}

function notFound(id: string): HttpException {
  return new HttpException({ error: 'not_found', message: `no dead letter with id ${id}` }, HttpStatus.NOT_FOUND);
}
