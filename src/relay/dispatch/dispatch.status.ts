import { Injectable } from '@nestjs/common';
import { InjectSettings } from '../../config/settings';
import type { DispatchConfig } from '../../config/sidecar-config';
import type { FeaturePart } from '../../management/feature-part';

/** Dispatch's part of /status: the rules by name only (destinations may carry credentials in their query). */
@Injectable()
export class DispatchStatus implements FeaturePart {
  readonly key = 'dispatch';
  readonly feature = true;

  constructor(@InjectSettings('dispatch') private readonly config: DispatchConfig) {}

  status() {
    const { header, rules, defaultDestination } = this.config;
    return { header, rules: rules.map((r) => r.name), hasDefault: defaultDestination !== null };
  }
}
