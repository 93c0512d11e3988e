import { Injectable } from '@nestjs/common';
import type { FeaturePart } from '../../management/feature-part';
import { Coordinator } from './coordinator';

/** Coordination's part of /status: whether this replica agrees with the others through Redis now. */
@Injectable()
export class CoordinationStatus implements FeaturePart {
  readonly key = 'coordination';
  readonly feature = true;

  constructor(private readonly coordinator: Coordinator) {}

  status() {
    return this.coordinator.status();
  }
}
