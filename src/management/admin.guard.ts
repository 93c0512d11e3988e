import { CanActivate, ExecutionContext, HttpException, HttpStatus, Injectable, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InjectSettings } from '../config/settings';
import type { ManagementConfig } from '../config/sidecar-config';
import { bearerToken, isAdminRequest, isLoopbackAddress, TokenFile, tokensMatch } from './admin-access';

/**
 * Applies the management port's access rules (admin-access.ts) to every route on it,
 * whichever module declares the route: a write or a /debug/* request needs the bearer
 * token when MANAGEMENT_TOKEN_FILE is set, or a loopback caller when it is not.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  private readonly logger = new Logger('Management');
  private readonly tokenFile: TokenFile | null;

  constructor(@InjectSettings('management') config: ManagementConfig) {
    const path = config.tokenFile;
    this.tokenFile =
      path === null
        ? null
        : new TokenFile(path, (reason) =>
            this.logger.warn({ msg: 'management token file unusable, the last good token stays in force', path, reason }),
          );
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const http = context.switchToHttp();
    const req = http.getRequest<FastifyRequest>();
    if (!isAdminRequest(req.method, req.url)) return true;
    const caller = req.socket?.remoteAddress;

    if (this.tokenFile === null) {
      if (isLoopbackAddress(caller)) return true;
      this.refused(req, caller, 'not_loopback');
      throw new HttpException(
        {
          error: 'forbidden',
          message: 'this endpoint answers only callers on loopback (kubectl port-forward or exec) while no MANAGEMENT_TOKEN_FILE is set',
        },
        HttpStatus.FORBIDDEN,
      );
    }

    const expected = await this.tokenFile.current();
    const given = bearerToken(req.headers.authorization);
    if (expected !== null && given !== null && tokensMatch(given, expected)) return true;
    this.refused(req, caller, given === null ? 'no_token' : 'wrong_token');
    http.getResponse<FastifyReply>().header('www-authenticate', 'Bearer realm="pod-sidecar management"');
    throw new HttpException(
      {
        error: 'unauthorized',
        message:
          given === null
            ? 'this endpoint needs Authorization: Bearer <token> (the content of MANAGEMENT_TOKEN_FILE)'
            : 'the bearer token is not the one in MANAGEMENT_TOKEN_FILE',
      },
      HttpStatus.UNAUTHORIZED,
    );
  }

  /** One line per refusal: who and what, never the Authorization header. */
  private refused(req: FastifyRequest, caller: string | undefined, reason: string): void {
    this.logger.warn({
      msg: 'management request refused',
      method: req.method,
      path: req.url.split('?', 1)[0],
      caller: caller ?? null,
      reason,
    });
  }
}
