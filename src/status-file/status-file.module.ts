import { Module } from '@nestjs/common';
import { StatusFile } from './status-file';

@Module({ providers: [StatusFile], exports: [StatusFile] })
export class StatusFileModule {}
