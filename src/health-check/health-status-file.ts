import { Injectable, Logger } from '@nestjs/common';
import { writeFileAtomic } from '../common/atomic-write';
import { installScript } from '../common/shell-scripts';
import { InjectSettings } from '../config/settings';
import type { SharedVolumeConfig } from '../config/sidecar-config';
import { PROBE_SCRIPTS, renderProbeScript } from './probe-scripts';

/** The outcome of one end-to-end health check, as the status file records it. */
export interface CheckResult {
  status: 'success' | 'failure';
  message: string;
  checkedAt: Date;
  /** Time from the POST to the event's return, for successful checks. */
  roundTripMs?: number;
}

/** The file's text: smee-sidecar's two lines first (probe scripts read them), then facts of ours. */
export function renderStatus(result: CheckResult): string {
  let text = `status=${result.status}\nmessage=${oneLine(result.message)}\nchecked_at=${result.checkedAt.toISOString()}\n`;
  if (result.roundTripMs !== undefined) text += `round_trip_ms=${Math.round(result.roundTripMs)}\n`;
  return text;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/**
 * The shared volume: the health status file that probe scripts read, and the scripts
 * themselves. Every write replaces the file atomically.
 */
@Injectable()
export class HealthStatusFile {
  private readonly logger = new Logger('HealthStatusFile');
  constructor(@InjectSettings('sharedVolume') private readonly config: SharedVolumeConfig) {}

  get path(): string {
    return this.config.healthFilePath;
  }

  async write(result: CheckResult): Promise<boolean> {
    try {
      await writeFileAtomic(this.config.healthFilePath, renderStatus(result));
      return true;
    } catch (e) {
      this.logger.error({ msg: 'cannot write the health status file', path: this.config.healthFilePath, reason: (e as Error).message });
      return false;
    }
  }

  /**
   * (Re)writes the probe scripts, mode 0555. A read-only copy left by an earlier
   * container is replaced by rename, which needs only the directory to be writable.
   */
  async installProbes(): Promise<void> {
    for (const name of PROBE_SCRIPTS) await installScript(this.config.path, name, renderProbeScript(name, this.config.healthFilePath));
  }
}
