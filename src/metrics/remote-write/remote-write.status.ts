import { Injectable } from '@nestjs/common';
import type { FeaturePart } from '../../management/feature-part';
import { RemoteWriteService } from './remote-write.service';

/** Remote write's part of /status: the queue, the last success and the scraped targets. */
@Injectable()
export class RemoteWriteStatus implements FeaturePart {
  readonly key = 'remoteWrite';
  readonly feature = true;

  constructor(private readonly remoteWrite: RemoteWriteService) {}

  status() {
    return this.remoteWrite.status();
  }
}
